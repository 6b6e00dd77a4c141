"""GAN-CLS networks (Reed et al. 2016): a text-conditioned DCGAN generator and a matching-aware discriminator.

G: text embedding -> Linear + LeakyReLU 0.2 (the projection) -> concatenated with z -> DCGAN transposed convs.
D: DCGAN strided convs to 4x4; the projected text is replicated over the 4x4 map and concatenated; then a 1x1
conv (norm + LeakyReLU) and a 4x4 conv give one score per (image, text) pair.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from gantrain.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gantrain.nets.norm import norm2d, uses_bias


class TextProjection(nn.Module):
    def __init__(self, text_dim: int, proj_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(text_dim, proj_dim), nn.LeakyReLU(0.2, inplace=True))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class TextConditionedGenerator(nn.Module):
    def __init__(self, z_dim: int, text_dim: int, proj_dim: int, channels: int, image_size: int, ngf: int, norm: str) -> None:
        super().__init__()
        self.project = TextProjection(text_dim, proj_dim)
        self.body = DCGANGenerator(z_dim + proj_dim, channels, image_size, ngf, norm)

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([z, self.project(h)], 1))


class MatchingDiscriminator(nn.Module):
    def __init__(self, text_dim: int, proj_dim: int, channels: int, image_size: int, ndf: int, norm: str) -> None:
        super().__init__()
        self.trunk = DCGANDiscriminator(channels, image_size, ndf, norm).trunk
        width = ndf * 2 ** (len([m for m in self.trunk if isinstance(m, nn.Conv2d)]) - 1)
        self.project = TextProjection(text_dim, proj_dim)
        self.joint = nn.Sequential(
            nn.Conv2d(width + proj_dim, width, 1, 1, 0, bias=uses_bias(norm)), norm2d(norm, width),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.head = nn.Conv2d(width, 1, 4, 1, 0)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        feats = self.trunk(x)
        text = self.project(h).view(h.shape[0], -1, 1, 1).expand(-1, -1, feats.shape[2], feats.shape[3])
        return self.head(self.joint(torch.cat([feats, text], 1))).flatten()
