"""Differentiable augmentation of D's inputs (DiffAugment, Zhao et al. 2020).

On small datasets D memorises the real images within a few dozen epochs and G's signal turns into noise.
Augmenting *both* real and generated images with the same random, differentiable transforms, in D's loss and
in G's, keeps D from memorising while G still learns the un-augmented distribution (the transforms are applied
to its output, so gradients flow through them). Randomness comes from torch's global generator, which the
trainer seeds and checkpoints, so resume stays exact.

Policies (comma-separated in `model.augment`): `color` (brightness, saturation, contrast), `translation`
(shift by up to 1/8 of the size, zero padding), `cutout` (zero a square of half the size).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from gantrain.errors import GantrainError

POLICIES = ("color", "translation", "cutout")


def _per_image(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).uniform_(low, high)


def color(x: torch.Tensor) -> torch.Tensor:
    x = x + _per_image(x, -0.5, 0.5)
    if x.shape[1] > 1:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * _per_image(x, 0.0, 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _per_image(x, 0.5, 1.5) + mean


def _shifted_index(size: int, shift: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(N, size) source indices into a copy padded by one zero row/column at each end."""
    return (torch.arange(size, device=device).unsqueeze(0) + shift.unsqueeze(1)).clamp(-1, size).add(1)


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    n, c, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, (n,), device=x.device)
    dx = torch.randint(-max_dx, max_dx + 1, (n,), device=x.device)
    padded = nn.functional.pad(x, (1, 1, 1, 1))
    rows = _shifted_index(h, dy, x.device)  # out[i, :, y, :] = padded[i, :, rows[i, y], :]
    cols = _shifted_index(w, dx, x.device)
    out = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w + 2))
    return out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    row = torch.arange(h, device=x.device).view(1, h, 1) - cy + ch // 2  # 0 <= row < ch inside the square
    col = torch.arange(w, device=x.device).view(1, 1, w) - cx + cw // 2
    inside = (row >= 0) & (row < ch) & (col >= 0) & (col < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


class DiffAugment(nn.Module):
    """`DiffAugment("translation,cutout")(x)`; an empty policy is the identity."""

    def __init__(self, policy: str = "") -> None:
        super().__init__()
        self.policy = [p.strip() for p in policy.split(",") if p.strip()]
        unknown = [p for p in self.policy if p not in _TRANSFORMS]
        if unknown:
            raise GantrainError(
                f"unknown augmentation {', '.join(unknown)} in model.augment={policy!r}; "
                f"use a comma-separated subset of {', '.join(POLICIES)} (or '' for none)"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.policy:
            x = _TRANSFORMS[name](x)
        return x
