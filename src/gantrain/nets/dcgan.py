"""DCGAN networks (Radford et al. 2016) for any power-of-two size from 16 px up.

G: project z to 4x4, then stride-2 transposed convs with BN + ReLU, halving channels, Tanh out.
D: stride-2 convs with LeakyReLU 0.2 (no norm on the first), doubling channels down to 4x4, then a 4x4 conv to one logit.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from gantrain.errors import GantrainError
from gantrain.nets.norm import norm2d, uses_bias


def _levels(image_size: int) -> int:
    levels = int(math.log2(image_size)) - 2
    if image_size < 16 or 2 ** (levels + 2) != image_size:
        raise GantrainError(f"DCGAN nets need a power-of-two image size >= 16, got data.image_size={image_size}")
    return levels


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, image_size: int, ngf: int = 64, norm: str = "batch"):
        super().__init__()
        levels = _levels(image_size)
        width = ngf * 2 ** (levels - 1)
        bias = uses_bias(norm)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, width, 4, 1, 0, bias=bias),
            norm2d(norm, width),
            nn.ReLU(inplace=True),
        ]
        for _ in range(levels - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=bias), norm2d(norm, width // 2), nn.ReLU(inplace=True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.z_dim = z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    """`features(x)` gives the 4x4 map (for auxiliary heads); `forward(x)` one logit per image."""

    def __init__(self, channels: int, image_size: int, ndf: int = 64, norm: str = "batch", in_extra: int = 0):
        super().__init__()
        levels = _levels(image_size)
        layers: list[nn.Module] = [nn.Conv2d(channels + in_extra, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        width = ndf
        bias = uses_bias(norm)
        for _ in range(levels - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=bias), norm2d(norm, width * 2), nn.LeakyReLU(0.2, inplace=True)]
            width *= 2
        self.trunk = nn.Sequential(*layers)
        self.feature_channels = width
        self.head = nn.Conv2d(width, 1, 4, 1, 0)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x)).flatten()
