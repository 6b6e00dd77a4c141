"""Adversarial losses on raw logits/scores: `bce` (non-saturating), `lsgan`, `hinge`, `wgan`, `wgan-gp`.

Each loss answers two questions: how D is scored on a batch it should call real (or fake), and how G is scored
on its fakes. Families with extra terms (mismatching captions, cycles) combine these calls.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from gantrain.errors import GantrainError

LOSSES = ("bce", "lsgan", "hinge", "wgan", "wgan-gp")
ALIASES = {"vanilla": "bce", "classic": "bce", "wgangp": "wgan-gp"}  # the CycleGAN and DualGAN codes' names


class AdversarialLoss:
    def __init__(self, kind: str) -> None:
        kind = ALIASES.get(kind, kind)
        if kind not in LOSSES:
            raise GantrainError(f"unknown model.loss {kind!r}; choose one of: {', '.join(LOSSES)}")
        self.kind = kind

    @property
    def is_wasserstein(self) -> bool:
        return self.kind in ("wgan", "wgan-gp")

    def discriminator(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        """D's loss on a batch it should classify as real (real=True) or fake."""
        logits = logits.float()
        if self.kind == "bce":
            target = torch.ones_like(logits) if real else torch.zeros_like(logits)
            return F.binary_cross_entropy_with_logits(logits, target)
        if self.kind == "lsgan":
            return (logits - 1).pow(2).mean() if real else logits.pow(2).mean()
        if self.kind == "hinge":
            return F.relu(1 - logits).mean() if real else F.relu(1 + logits).mean()
        return -logits.mean() if real else logits.mean()

    def generator(self, logits: torch.Tensor) -> torch.Tensor:
        """G's loss on D's output for its fakes (non-saturating for bce)."""
        logits = logits.float()
        if self.kind == "bce":
            return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        if self.kind == "lsgan":
            return (logits - 1).pow(2).mean()
        return -logits.mean()

    def d_pair(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.discriminator(real_logits, True), self.discriminator(fake_logits, False)


def make_loss(kind: str) -> AdversarialLoss:
    return AdversarialLoss(kind)


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates of real and fake."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(mixed)
    (grads,) = torch.autograd.grad(scores.float().sum(), mixed, create_graph=True)
    return (grads.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


def r1_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(critic logits on `real`, R1 = E[||grad_x D(x)||^2] on them) (Mescheder et al. 2018); the caller scales R1 by
    gamma / 2, as StyleGAN's and IDInvert's `D_logistic_simplegp` do. The logits serve D's real term too."""
    real = real.detach().requires_grad_(True)
    logits = critic(real)
    (grads,) = torch.autograd.grad(logits.float().sum(), real, create_graph=True)
    return logits, grads.float().pow(2).flatten(1).sum(1).mean()


@torch.no_grad()
def clip_weights_(*nets: nn.Module, value: float) -> None:
    """WGAN (weight clipping): keep every parameter of the critics in [-value, value] after their update
    (two fused multi-tensor kernels rather than one launch per parameter)."""
    params = [p for net in nets for p in net.parameters()]
    torch._foreach_clamp_min_(params, -value)
    torch._foreach_clamp_max_(params, value)
