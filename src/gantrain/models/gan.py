"""`model=gan`: the original GAN (Goodfellow et al. 2014) with MLP networks.

`arch: paper` is the paper's MNIST nets (goodfeli/adversarial mnist.yaml): G 1200-1200 ReLU, D maxout 240 x 5 twice
with dropout; `arch: mlp` the popular reimplementation's LeakyReLU MLPs (128-256-512-1024 / 512-256).

The training step here is the plain unconditional game shared by DCGAN: D on real and fake, then (every
`d_steps` batches) G through the frozen D. Any loss of `gantrain.losses`; `wgan-gp` adds the gradient penalty,
`wgan` clips D's weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from omegaconf import MISSING

from gantrain.data.base import DataInfo
from gantrain.errors import GantrainError
from gantrain.losses import clip_weights_
from gantrain.models.base import GANModel
from gantrain.nets.diffaug import DiffAugment
from gantrain.nets.init import init_weights
from gantrain.nets.mlp import MaxoutDiscriminator, MLPDiscriminator, MLPGenerator


@dataclass
class GameConfig:
    """The keys of the unconditional game below, shared by `gan` and `dcgan` (their YAMLs hold the values)."""

    name: str = MISSING
    z_dim: int = MISSING
    z_dist: str = MISSING  # normal | uniform
    norm_G: str = MISSING
    norm_D: str = MISSING
    loss: str = MISSING  # bce | lsgan | hinge | wgan | wgan-gp
    d_steps: int = MISSING  # D updates per G update (the critic steps of WGAN)
    gp_weight: float = MISSING  # wgan-gp
    clip_value: float = MISSING  # wgan
    augment: str = MISSING  # DiffAugment policy for D's inputs, e.g. "translation,cutout" (small datasets)
    topk_gamma: float = MISSING  # top-k G updates (Sinha et al. 2020): keep k fakes, k *= gamma per epoch; 1 = off
    topk_min: float = MISSING  # the floor of k as a share of the batch (the paper's nu)
    init_type: str = MISSING
    init_gain: float = MISSING


class GAN(GANModel):
    @dataclass
    class Config(GameConfig):
        arch: str = MISSING  # paper: ReLU G, maxout D with dropout (mnist.yaml) | mlp: LeakyReLU MLPs (a reimplementation's)
        g_hidden: list[int] = MISSING
        d_hidden: list[int] = MISSING
        maxout_pieces: int = MISSING  # arch=paper: pieces per maxout unit
        d_input_dropout: float = MISSING  # arch=paper: dropout on D's input
        d_dropout: float = MISSING  # arch=paper: dropout after each maxout layer

    def __init__(self, cfg, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.nets["G"], self.nets["D"] = self.build_nets(cfg, info)
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain)
        self.augment = DiffAugment(cfg.augment)

    def build_nets(self, cfg, info: DataInfo) -> tuple[nn.Module, nn.Module]:
        shape = (info.channels, info.image_size, info.image_size)
        if cfg.arch == "paper":
            return (
                MLPGenerator(cfg.z_dim, shape, cfg.g_hidden, cfg.norm_G, relu=True),
                MaxoutDiscriminator(shape, cfg.d_hidden, cfg.maxout_pieces, cfg.d_input_dropout, cfg.d_dropout),
            )
        if cfg.arch != "mlp":
            raise GantrainError(f"unknown model.arch {cfg.arch!r}; choose paper (ReLU G, maxout D) or mlp")
        return (
            MLPGenerator(cfg.z_dim, shape, cfg.g_hidden, cfg.norm_G),
            MLPDiscriminator(shape, cfg.d_hidden, cfg.norm_D),
        )

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """D's logits on `x`, augmented first when `model.augment` names a policy (the same for real and fake)."""
        return self.nets["D"](self.augment(x))

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        G, rt = self.nets["G"], self.rt
        D = self.discriminate
        real = batch["image"]
        z = self.sample_z(real.shape[0])
        with rt.autocast():
            fake = G(z)
            d_real, d_fake = self.loss.d_pair(D(real), D(fake.detach()))
            loss_D = d_real + d_fake
            if self.loss.kind == "wgan-gp":
                loss_D = loss_D + self.cfg.gp_weight * self.gradient_penalty(D, real, fake)
        self.update("D", loss_D)
        if self.loss.kind == "wgan":
            clip_weights_(self.nets["D"], value=self.cfg.clip_value)
        out = {"D": loss_D.detach(), "D_real": d_real.detach(), "D_fake": d_fake.detach()}
        if (step + 1) % self.cfg.d_steps == 0:
            with self.frozen(self.nets["D"]):
                with rt.autocast():
                    loss_G = self.loss.generator(self.top_k(D(fake), step))
                self.update("G", loss_G)
            out["G"] = loss_G.detach()
        return out

    def top_k(self, logits: torch.Tensor, step: int) -> torch.Tensor:
        """D's logits on the k fakes it rates most real (Sinha et al. 2020): the worst fakes' gradients point
        between modes, so dropping them sharpens samples. k starts at the batch and shrinks by `topk_gamma`
        per epoch down to `topk_min` of it."""
        if self.cfg.topk_gamma >= 1.0:
            return logits
        n = logits.shape[0]
        share = max(self.cfg.topk_min, self.cfg.topk_gamma ** (step // self.steps_per_epoch))
        k = max(1, round(share * n))
        keep = logits.detach().float().reshape(n, -1).mean(1).topk(k).indices  # per-sample score (PatchGAN maps averaged)
        return logits[keep]

    @torch.no_grad()
    def generate(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> torch.Tensor:
        G = (nets or self.nets)["G"]
        with self.rt.autocast():
            return G(inputs["z"].to(self.rt.device)).float()
