#!/usr/bin/env python
"""The peer of issue 20's cgan comparison: a plain MLP conditional GAN as a popular reimplementation writes it
(label embedding joined to z and to the flattened image, least-squares loss, Adam 2e-4, batch 64), trained for
a fixed wall time on gantrain's digits and scored by gantrain's own evaluation.

Everything but the model is gantrain's: the config (`model=cgan data=digits` with its preset, so the split, the
image size and the eval settings are the preset's), the batch stream, and the `classifier` metric on the same
1,000 class-major samples (`eval.seed`). So `cls_fd` and `cond_accuracy` compare directly with the preset's run.

    python scripts/peer_cgan.py --seconds 390 --seed 0            # prints one JSON line
    python scripts/peer_cgan.py --until RUN/checkpoints/step_0003000.pt  # beside a 3,000-step preset run

`--until` gives both the same wall time under the same load: started together, the peer trains until the preset's
run writes its final checkpoint (after its evaluation), so the peer gets at least the preset's whole wall time.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
from hydra import compose, initialize_config_dir

from gantrain.config import config_dir, validate_config
from gantrain.data.loader import make_batch_stream
from gantrain.metrics.evaluator import Evaluator
from gantrain.models.conditional import grid_labels
from gantrain.runs import build_data

Z_DIM, BATCH, LR, BETAS = 100, 64, 2e-4, (0.5, 0.999)


def block(n_in: int, n_out: int, norm: bool) -> list[nn.Module]:
    """Linear, batch norm with the reimplementation's eps 0.8 (its second positional argument), LeakyReLU 0.2."""
    return [nn.Linear(n_in, n_out), *([nn.BatchNorm1d(n_out, 0.8)] if norm else []), nn.LeakyReLU(0.2, inplace=True)]


class PeerGenerator(nn.Module):
    """[z, embed(y)] -> 128 -> 256 -> 512 -> 1024 (batch norm after all but the first) -> pixels, Tanh."""

    def __init__(self, classes: int, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.shape = shape
        self.embed = nn.Embedding(classes, classes)
        self.net = nn.Sequential(*block(Z_DIM + classes, 128, False), *block(128, 256, True), *block(256, 512, True),
                                 *block(512, 1024, True), nn.Linear(1024, math.prod(shape)), nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.embed(y)], 1)).view(len(z), *self.shape)


class PeerDiscriminator(nn.Module):
    """[flattened image, embed(y)] -> 512 -> 512 -> 512 (dropout 0.4 on the last two) -> one score."""

    def __init__(self, classes: int, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.embed = nn.Embedding(classes, classes)
        self.net = nn.Sequential(
            nn.Linear(math.prod(shape) + classes, 512), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 512), nn.Dropout(0.4), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 512), nn.Dropout(0.4), nn.LeakyReLU(0.2, inplace=True), nn.Linear(512, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x.flatten(1), self.embed(y)], 1))


class PeerModel:
    """What gantrain's Evaluator asks of a model: class-major fixed inputs and `generate` in eval mode."""

    default_metrics = ("classifier",)
    directions: tuple[str, ...] = ()
    conditioning = "label"

    def __init__(self, G: PeerGenerator, classes: int) -> None:
        self.G, self.classes = G, classes

    def fixed_inputs(self, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        return {"z": torch.randn(n, Z_DIM, generator=gen), "label": grid_labels(n, self.classes)}

    @torch.no_grad()
    def generate(self, inputs: dict[str, torch.Tensor], nets=None) -> torch.Tensor:
        self.G.eval()
        return self.G(inputs["z"], inputs["label"])


def train(cfg, done: Callable[[], bool]) -> tuple[PeerGenerator, int]:
    """Train until `done()` (checked every step); returns G and the number of steps."""
    data = build_data(cfg)
    info = data.info
    shape = (info.channels, info.image_size, info.image_size)
    G, D = PeerGenerator(info.num_classes, shape), PeerDiscriminator(info.num_classes, shape)
    opt_G, opt_D = torch.optim.Adam(G.parameters(), LR, betas=BETAS), torch.optim.Adam(D.parameters(), LR, betas=BETAS)
    stream = make_batch_stream(data.split("train"), batch_size=BATCH, seed=cfg.seed, device=torch.device("cpu"),
                               cache=data.cache_mode, drop_last=True)
    mse, step, epoch = nn.MSELoss(), 0, 0
    while not done():
        for batch in stream.epoch(epoch):
            real, y = batch["image"], batch["label"]
            ones, zeros = torch.ones(len(real), 1), torch.zeros(len(real), 1)
            y_fake = torch.randint(0, info.num_classes, (len(real),))
            fake = G(torch.randn(len(real), Z_DIM), y_fake)
            loss_G = mse(D(fake, y_fake), ones)
            opt_G.zero_grad()
            loss_G.backward()
            opt_G.step()
            loss_D = 0.5 * (mse(D(real, y), ones) + mse(D(fake.detach(), y_fake), zeros))
            opt_D.zero_grad()
            loss_D.backward()
            opt_D.step()
            step += 1
            if done():
                break
        epoch += 1
    return G, step


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    when = parser.add_mutually_exclusive_group(required=True)
    when.add_argument("--seconds", type=float, help="training wall time")
    when.add_argument("--until", type=Path, help="train until this file exists (the preset run's final checkpoint)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(1)  # as the preset (trainer.num_threads=1)
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = validate_config(compose(config_name="train", overrides=["model=cgan", "data=digits", f"seed={args.seed}"]))
    torch.manual_seed(args.seed)
    if args.until is not None:
        G, steps = train(cfg, args.until.exists)
    else:
        G, steps = train(cfg, lambda: time.perf_counter() - start >= args.seconds)
    train_s = time.perf_counter() - start
    data = build_data(cfg)
    results = Evaluator(cfg, data, PeerModel(G, data.info.num_classes), torch.device("cpu"))(None, steps)
    keys = ("cond_accuracy", "cond_accuracy_worst_class", "cls_fd", "cls_fd_ref", "cls_fd_ratio", "max_class_share")
    print(json.dumps({"peer": "mlp-cgan-lsgan", "seed": args.seed, "steps": steps, "image_size": cfg.data.image_size,
                      "train_s": round(train_s, 1), "wall_s": round(time.perf_counter() - start, 1),
                      **{k: round(results[k], 4) for k in keys}}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
