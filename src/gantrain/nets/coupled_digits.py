"""CoGAN's official 28x28 digit blocks (Liu & Tuzel 2016, Table 1 of the paper; mingyuliutw/CoGAN
cogan_pytorch/src/net_cogan_mnistedge.py, CoGen28x28 and CoDis28x28), for `CoupledGenerator`/`CoupledDiscriminator`.

G: z -> 4x4x(8 ngf) (transposed conv k4 s1) -> 7x7x(4 ngf) -> 13x13x(2 ngf) -> 25x25x(ngf) (k3 s2 p1 each) -> 28x28
(k6 s1 p1), each hidden layer transposed conv + batch norm without learned scale/shift + PReLU (one slope per layer),
sigmoid at the end. D: LeNet, conv 5x5 -> max-pool 2 -> conv 5x5 -> max-pool 2 -> conv 4x4 (the 500-unit FC) +
PReLU -> 1x1 conv to one logit; no normalisation and no activation after the first two convs, as in the paper.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from gantrain.errors import GantrainError
from gantrain.nets.norm import norm2d

IMAGE_SIZE = 28
# (kernel, stride, padding) of the five transposed convs: 1 -> 4 -> 7 -> 13 -> 25 -> 28
G_LAYERS = ((4, 1, 0), (3, 2, 1), (3, 2, 1), (3, 2, 1), (6, 1, 1))


class SigmoidImage(nn.Module):
    """The official sigmoid output, mapped from [0, 1] to gantrain's image range [-1, 1]: 2 sigmoid(a) - 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x) * 2 - 1


def _g_norm(kind: str, channels: int) -> nn.Module:
    """`batch` is the official non-affine batch norm (BatchNorm2d(affine=False)); other kinds as everywhere."""
    return nn.BatchNorm2d(channels, affine=False) if kind == "batch" else norm2d(kind, channels)


def check_size(image_size: int) -> None:
    if image_size != IMAGE_SIZE:
        raise GantrainError(f"model.arch=official builds CoGAN's 28x28 digit nets, not {image_size}x{image_size}; "
                            "set data.image_size=28, or model.arch=dcgan for other sizes")


def generator_blocks(z_dim: int, channels: int, ngf: int, norm: str) -> list[nn.Module]:
    """Five blocks; the hidden widths are 8, 4, 2, 1 x ngf (official: ngf 128, 1024 -> 128)."""
    widths = [z_dim, 8 * ngf, 4 * ngf, 2 * ngf, ngf]
    blocks: list[nn.Module] = [
        nn.Sequential(nn.ConvTranspose2d(i, o, k, s, p), _g_norm(norm, o), nn.PReLU())
        for i, o, (k, s, p) in zip(widths, widths[1:], G_LAYERS)
    ]
    k, s, p = G_LAYERS[-1]
    blocks.append(nn.Sequential(nn.ConvTranspose2d(ngf, channels, k, s, p), SigmoidImage()))
    return blocks


def discriminator_blocks(channels: int, widths: Sequence[int], dropout: float) -> list[nn.Module]:
    """Four blocks: conv + pool, conv + pool, the 500-unit layer (+ dropout when `dropout` > 0), the logit."""
    if len(widths) != 3 or min(widths) < 1:
        raise GantrainError(f"model.d_widths={list(widths)} needs three positive widths (two convs, one FC layer), "
                            "e.g. the official [20, 50, 500]")
    c0, c1, fc = widths
    hidden: list[nn.Module] = [nn.Conv2d(c1, fc, 4), nn.PReLU()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
    return [
        nn.Sequential(nn.Conv2d(channels, c0, 5), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(c0, c1, 5), nn.MaxPool2d(2)),
        nn.Sequential(*hidden),
        nn.Sequential(nn.Conv2d(fc, 1, 1), nn.Flatten(0)),
    ]
