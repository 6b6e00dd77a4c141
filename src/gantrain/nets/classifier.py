"""A dataset's own classifier, trained on its real training split and cached: features and labels for
datasets where Inception features say little (the digits, small grey images)."""

from __future__ import annotations

import hashlib
import itertools
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from gantrain.data.base import InMemoryImages
from gantrain.errors import GantrainError
from gantrain.io import cache_folder, cache_path, load_or_build
from gantrain.rng import isolated_rng

log = logging.getLogger(__name__)

CLASSIFIER_VERSION = 3
# version 3: width 16 (64-d features), fewer epochs, larger batches: seconds on one CPU thread, not ~2 minutes
WIDTH = 32
TRAIN_EPOCHS = 12
BATCH = 64
# datasets stored upsampled from a smaller native side: average-pooling back to twice that side first loses none
# of the real images' detail and cuts the classifier's compute 4x or more (digits: 8x8 originals)
NATIVE_SIDE = {"digits": 8}
TRAIN_SEED = 0


class SmallClassifier(nn.Module):
    """Three conv blocks -> global average pool (4 x width features) -> linear class logits."""

    def __init__(self, channels: int, num_classes: int, width: int = WIDTH, input_pool: int = 1) -> None:
        super().__init__()
        w = width
        self.trunk = nn.Sequential(
            *([nn.AvgPool2d(input_pool)] if input_pool > 1 else []),
            nn.Conv2d(channels, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(4 * w, num_classes)
        self.feature_dim = 4 * w

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.trunk(x)
        return feats, self.head(feats)


def input_pool(dataset: str, image_size: int) -> int:
    """The classifier's input pooling factor for `dataset` at `image_size` (1: none)."""
    native = NATIVE_SIDE.get(dataset)
    return max(image_size // (2 * native), 1) if native else 1


def protocol_key(dataset: str, image_size: int, channels: int, num_classes: int, n_train: int) -> dict[str, Any]:
    return {
        "dataset": dataset, "image_size": image_size, "channels": channels, "num_classes": num_classes,
        "n_train": n_train, "epochs": TRAIN_EPOCHS, "width": WIDTH, "batch": BATCH,
        "input_pool": input_pool(dataset, image_size), "seed": TRAIN_SEED, "version": CLASSIFIER_VERSION,
    }


def cache_file(name: str, key: dict[str, Any], folder: str | None = None) -> Path:
    """The cache file of metric network `name` trained under `key` (everything that changes its weights), in
    `folder` (`eval.classifier_cache`) or ~/.cache/gantrain/classifiers."""
    return cache_path(cache_folder(folder, "classifiers"), name, key)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shifts, blur and pixel noise that keep a digit the same digit.

    Training on them makes the feature space measure content rather than pixel-level texture: without them a
    Fréchet distance in this space jumps 17x for imperceptible noise (sigma 0.05) and 39x for a 3x3 blur.
    """
    n = x.shape[0]
    pad = max(x.shape[-1] // 8, 1)
    padded = F.pad(x, (pad,) * 4, value=-1.0)
    dx, dy = torch.randint(0, 2 * pad + 1, (2,), generator=gen).tolist()
    x = padded[..., dy : dy + x.shape[-2], dx : dx + x.shape[-1]]
    blur = (torch.rand(n, 1, 1, 1, generator=gen) < 0.3).to(x.dtype)
    x = blur * F.avg_pool2d(x, 3, 1, 1, count_include_pad=False) + (1 - blur) * x
    sigma = torch.rand(n, 1, 1, 1, generator=gen) * 0.3
    return (x + sigma * torch.randn(x.shape, generator=gen)).clamp(-1, 1)


def train_seeded(
    build: Callable[[], nn.Module],
    batches: Callable[[torch.Generator], Iterator[tuple[torch.Tensor, torch.Tensor]]],
    loss: Callable[[Any, torch.Tensor], torch.Tensor],
    steps: int,
    lr: float,
    device: torch.device,
    seed: int = TRAIN_SEED,
) -> nn.Module:
    """Train a metric network reproducibly: fixed seed, `augment`ed batches, Adam with a one-cycle learning rate.

    `batches(gen)` yields (images in [-1, 1], targets) drawing its randomness from `gen`. It runs in
    `isolated_rng(seed)`: every RNG of the caller (CPU and CUDA) continues afterwards as if it had not run, so
    training a metric inside a run does not change the run.
    """
    with isolated_rng(seed):
        gen = torch.Generator().manual_seed(seed)
        net = build().to(device)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
        net.train()
        for x, y in itertools.islice(batches(gen), steps):
            value = loss(net(augment(x, gen).to(device)), y.to(device))
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            sched.step()
        return net.eval()


def train_classifier(train: InMemoryImages, channels: int, num_classes: int, device: torch.device,
                     pool: int = 1) -> SmallClassifier:
    steps_per_epoch = max(len(train) // BATCH, 1)

    def batches(gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _ in range(TRAIN_EPOCHS):
            order = torch.randperm(len(train), generator=gen)
            for b in range(steps_per_epoch):
                batch = train.batch(order[b * BATCH : (b + 1) * BATCH])
                yield batch["image"], batch["label"]

    return train_seeded(
        lambda: SmallClassifier(channels, num_classes, input_pool=pool), batches, lambda out, y: F.cross_entropy(out[1], y),
        TRAIN_EPOCHS * steps_per_epoch, 2e-3, device,
    )


def net_blob(net: nn.Module, protocol: dict[str, Any], path: Path) -> dict[str, Any]:
    """What a metric cache file holds: `net`'s weights on the CPU and its protocol, plus a hash of the weights
    and the file's own name (so a report can say which network measured it)."""
    state = {k: v.cpu() for k, v in net.state_dict().items()}
    digest = hashlib.sha256(b"".join(v.numpy().tobytes() for v in state.values())).hexdigest()[:16]
    return {"state_dict": state, "protocol": {**protocol, "weights_sha256": digest, "cache_file": str(path)}}


def cached_net(path: Path, build: Callable[[], nn.Module], train: Callable[[], tuple[nn.Module, dict[str, Any]]],
               device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """(net in eval mode on `device`, its protocol): the weights stored at `path`, or `train()`ed and cached there.

    `build()` makes the empty architecture the weights load into; `train()` returns (net, protocol)."""

    def trained() -> dict[str, Any]:
        return net_blob(*train(), path)

    def read(blob: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
        net = build()
        net.load_state_dict(blob["state_dict"])
        return net.to(device).eval(), blob["protocol"]

    return load_or_build(path, trained, read)


@torch.no_grad()
def classify(net: SmallClassifier, images: torch.Tensor, device: torch.device, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    feats, logits = [], []
    for chunk in images.split(batch):
        f, l = net(chunk.to(device).float())
        feats.append(f.double().cpu())
        logits.append(l.float().cpu())
    return torch.cat(feats), torch.cat(logits)


def load_or_train(dataset: str, train: InMemoryImages, test: InMemoryImages, channels: int, num_classes: int,
                  device: torch.device, folder: str | None = None) -> tuple[SmallClassifier, dict[str, Any]]:
    """The cached classifier for these settings, trained (and cached) on first use."""
    if train.labels is None or num_classes < 2:
        raise GantrainError(f"the classifier metrics need a labelled dataset; data={dataset} has no labels")
    key = protocol_key(dataset, train.images.shape[-1], channels, num_classes, len(train))
    path = cache_file(dataset, key, folder)
    pool = key["input_pool"]

    def train_net() -> tuple[SmallClassifier, dict[str, Any]]:
        log.info("training the %s classifier for metrics (cached at %s)", dataset, path)
        net = train_classifier(train, channels, num_classes, device, pool)
        _, logits = classify(net, test.batch(torch.arange(len(test)))["image"], device)
        accuracy = float((logits.argmax(1) == test.labels.cpu()).float().mean())
        return net, {**key, "test_accuracy": accuracy}

    return cached_net(path, lambda: SmallClassifier(channels, num_classes, input_pool=pool), train_net, device)
