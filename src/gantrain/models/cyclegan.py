"""`model=cyclegan`: CycleGAN (Zhu et al. 2017) as the reference implementation trains it.

G_A: A -> B and G_B: B -> A (ResNet or U-Net), D_A judges fake_B against real B and D_B fake_A against real A
(70x70 PatchGAN). Per batch: one forward of both cycles; one G step on LSGAN + cycle L1 (lambda_A, lambda_B) +
identity L1 (lambda_identity x lambda) with D frozen; then one D step on real vs a history-pool fake, each
D loss halved. Keys keep the reference's names (netG, netD, n_layers_D, lambda_A, pool_size, ...).

Speed without changing the maths: with a per-sample norm (instance/none/layer) the six generator forwards run
as three batched calls (G_A on [A; B] gives fake_B and idt_A; G_B on [B; A; fake_B] gives fake_A, idt_B and
rec_A; G_A on fake_A gives rec_B), and D scores real and fake in one call. Batch norm falls back to one call
per image set so its statistics stay per-domain (`model.batch_forwards=false` gives the reference's order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import MISSING

from gantrain.data.base import DataInfo
from gantrain.errors import GantrainError
from gantrain.models.translation import TranslationModel
from gantrain.nets.generators import size_multiple
from gantrain.nets.image_pool import ImagePool


class CycleGAN(TranslationModel):
    @dataclass
    class Config:
        name: str = MISSING
        netG: str = MISSING  # resnet_9blocks | resnet_6blocks | unet_256 | unet_128 (| unet_32, resnet_<N>blocks)
        netD: str = MISSING  # basic (70x70 PatchGAN) | n_layers | pixel
        n_layers_D: int = MISSING  # used by netD=n_layers
        ngf: int = MISSING
        ndf: int = MISSING
        norm: str = MISSING  # instance | batch | layer | none
        bias_without_norm: bool = MISSING  # norm=none: convs with a bias (true: gantrain before) or none (the reference)
        dropout: bool = MISSING  # the reference's --no_dropout is on for CycleGAN
        init_type: str = MISSING
        init_gain: float = MISSING
        lambda_A: float = MISSING  # cycle A -> B -> A
        lambda_B: float = MISSING  # cycle B -> A -> B
        lambda_identity: float = MISSING  # identity weight relative to lambda (effective 5)
        pool_size: int = MISSING  # fakes kept per discriminator (0: none)
        loss: str = MISSING  # lsgan | vanilla | hinge | wgangp
        gp_weight: float = MISSING  # wgangp
        batch_forwards: bool = MISSING  # 3 batched G calls, one D call for real+fake (exact for per-sample norms)

    def __init__(self, cfg, info: DataInfo) -> None:
        super().__init__(cfg, info)  # builds self.loss from model.loss (lsgan, vanilla, hinge, wgangp)
        ca, cb = self.channels_A, self.channels_B
        if cfg.lambda_identity > 0 and ca != cb:
            raise GantrainError(f"the identity loss needs equal channel counts (A {ca}, B {cb}); set model.lambda_identity=0")
        self.build_patch_nets(cfg, cfg.bias_without_norm)
        self.pool_A = ImagePool(cfg.pool_size, seed=1)  # fake_B for D_A
        self.pool_B = ImagePool(cfg.pool_size, seed=2)  # fake_A for D_B
        self.batched = cfg.batch_forwards and cfg.norm != "batch"

    def size_multiple(self, direction: str) -> int:
        return size_multiple(self.nets["G_A"])

    # ------------------------------------------------------------------ training
    def _batched(self, net: nn.Module, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """net(x) for each x: one batched call when the norm is per-sample (the same result, fewer passes)."""
        if self.batched and all(x.shape == xs[0].shape for x in xs):
            return net(torch.cat(xs)).chunk(len(xs))
        return tuple(net(x) for x in xs)

    def _d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        real_logits, fake_logits = self._batched(D, real, fake)
        loss = 0.5 * (self.loss.discriminator(real_logits, True) + self.loss.discriminator(fake_logits, False))
        if self.loss.kind == "wgan-gp":
            loss = loss + self.cfg.gp_weight * self.gradient_penalty(D, real, fake)
        return loss

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        cfg, n, rt = self.cfg, self.nets, self.rt
        real_A, real_B = batch["A"], batch["B"]
        idt = cfg.lambda_identity > 0
        with self.frozen(n["D_A"], n["D_B"]):
            with rt.autocast():
                # Three generator passes: G_B's fake, identity and reconstruction inputs go in one batch once fake_B exists.
                if idt:  # G_A(B) and G_B(A) are the identity terms
                    fake_B, idt_A = self._batched(n["G_A"], real_A, real_B)
                    fake_A, idt_B, rec_A = self._batched(n["G_B"], real_B, real_A, fake_B)
                else:
                    fake_B = n["G_A"](real_A)
                    fake_A, rec_A = self._batched(n["G_B"], real_B, fake_B)
                rec_B = n["G_A"](fake_A)
                d_fake_B, d_fake_A = n["D_A"](fake_B), n["D_B"](fake_A)
                loss_G_A = self.loss.generator(d_fake_B)
                loss_G_B = self.loss.generator(d_fake_A)
                cycle_A = F.l1_loss(rec_A.float(), real_A) * cfg.lambda_A
                cycle_B = F.l1_loss(rec_B.float(), real_B) * cfg.lambda_B
                loss_G = loss_G_A + loss_G_B + cycle_A + cycle_B
                if idt:
                    idt_loss_A = F.l1_loss(idt_A.float(), real_B) * cfg.lambda_B * cfg.lambda_identity
                    idt_loss_B = F.l1_loss(idt_B.float(), real_A) * cfg.lambda_A * cfg.lambda_identity
                    loss_G = loss_G + idt_loss_A + idt_loss_B
            self.update("G", loss_G)
        with rt.autocast():
            loss_D_A = self._d_loss(n["D_A"], real_B, self.pool_A.query(fake_B))
            loss_D_B = self._d_loss(n["D_B"], real_A, self.pool_B.query(fake_A))
        self.update("D", loss_D_A + loss_D_B)
        out = {"D_A": loss_D_A, "G_A": loss_G_A, "cycle_A": cycle_A, "D_B": loss_D_B, "G_B": loss_G_B, "cycle_B": cycle_B}
        if idt:
            out.update(idt_A=idt_loss_A, idt_B=idt_loss_B)
        return {k: v.detach() for k, v in out.items()}

    # ------------------------------------------------------------------ pools in checkpoints
    def extra_state(self) -> dict[str, Any]:
        return {"pool_A": self.pool_A.state_dict(), "pool_B": self.pool_B.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "pool_A" in state:
            self.pool_A.load_state_dict(state["pool_A"], self.rt.device)
            self.pool_B.load_state_dict(state["pool_B"], self.rt.device)
