"""GAN-CLS networks (Reed et al. 2016; layers as the official reedscot/icml2016 main_cls_int.lua builds them).

G: text embedding -> Linear + LeakyReLU 0.2 (the projection) -> concatenated with z -> transposed convs doubling
the size from 4x4, BN; at 4x4 and 8x8 a residual bottleneck block (`residual`), elsewhere ReLU; Tanh out.
D: DCGAN strided convs to 4x4 (optionally a residual bottleneck block there); the projected text (Linear -> BN ->
LeakyReLU 0.2) is replicated over the 4x4 map and concatenated; then a 1x1 conv (BN + LeakyReLU) and a 4x4 conv
give one score per (image, text) pair.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from gantrain.nets.dcgan import DCGANDiscriminator, _levels
from gantrain.nets.norm import norm1d, norm2d, uses_bias

RESIDUAL_LEVELS = 2  # the official G has its blocks at 4x4 and 8x8


def _relu() -> nn.Module:
    return nn.ReLU(inplace=True)


def _leaky() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


class ResidualBottleneck(nn.Module):
    """act(x + branch(x)); the branch is a 1x1 conv down to width / 4, a 3x3, a 3x3 back to width, each normed,
    the activation between them (the official G's blocks with ReLU, D's with LeakyReLU 0.2). The input arrives
    normed but not activated: the activation after the sum is the level's activation."""

    def __init__(self, width: int, norm: str, act: Callable[[], nn.Module]) -> None:
        super().__init__()
        mid, bias = max(width // 4, 1), uses_bias(norm)
        self.branch = nn.Sequential(
            nn.Conv2d(width, mid, 1, 1, 0, bias=bias), norm2d(norm, mid), act(),
            nn.Conv2d(mid, mid, 3, 1, 1, bias=bias), norm2d(norm, mid), act(),
            nn.Conv2d(mid, width, 3, 1, 1, bias=bias), norm2d(norm, width),
        )
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.branch(x))


class TextProjection(nn.Module):
    """Linear -> norm (`batch` in the official D, `none` in its G) -> LeakyReLU 0.2."""

    def __init__(self, text_dim: int, proj_dim: int, norm: str = "none") -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(text_dim, proj_dim), norm1d(norm, proj_dim), _leaky())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


UPSAMPLES = ("transposed", "resize", "resize_last")


def _upsample(c_in: int, c_out: int, resize: bool, bias: bool) -> list[nn.Module]:
    """x2: a 4x4 stride-2 transposed conv, or (`resize`) nearest x2 then a 3x3 conv. The transposed conv makes the
    output pixels of each parity with a different quarter of its kernel, so neighbours alternate unless the quarters
    learn to agree (the checkerboard of Odena, Dumoulin and Olah 2016, "Deconvolution and checkerboard artifacts");
    the resize-conv makes every pixel with the same kernel."""
    if resize:
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias)]
    return [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias)]


class TextConditionedGenerator(nn.Module):
    """With `residual=False` the plain DCGAN generator on [z, projected text] (the same layers in the same order).
    `upsample`: `transposed` (the official G), `resize` (every x2 a resize-conv) or `resize_last` (the output layer only)."""

    def __init__(self, z_dim: int, text_dim: int, proj_dim: int, channels: int, image_size: int, ngf: int, norm: str,
                 proj_norm: str = "none", residual: bool = True, upsample: str = "transposed") -> None:
        super().__init__()
        if upsample not in UPSAMPLES:
            raise ValueError(f"upsample={upsample!r}: choose one of {', '.join(UPSAMPLES)}")
        self.project = TextProjection(text_dim, proj_dim, proj_norm)
        levels = _levels(image_size)
        width, bias = ngf * 2 ** (levels - 1), uses_bias(norm)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim + proj_dim, width, 4, 1, 0, bias=bias), norm2d(norm, width)]
        for level in range(levels):
            if level:
                layers += [*_upsample(width, width // 2, upsample == "resize", bias), norm2d(norm, width // 2)]
                width //= 2
            layers.append(ResidualBottleneck(width, norm, _relu) if residual and level < RESIDUAL_LEVELS else _relu())
        layers += [*_upsample(width, channels, upsample != "transposed", True), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        x = torch.cat([z, self.project(h)], 1)
        return self.net(x.view(x.shape[0], -1, 1, 1))


class MatchingDiscriminator(nn.Module):
    def __init__(self, text_dim: int, proj_dim: int, channels: int, image_size: int, ndf: int, norm: str,
                 proj_norm: str = "batch", residual: bool = False) -> None:
        super().__init__()
        trunk = list(DCGANDiscriminator(channels, image_size, ndf, norm).trunk)
        width = ndf * 2 ** (len([m for m in trunk if isinstance(m, nn.Conv2d)]) - 1)
        if residual:  # conv, norm, then the block, whose LeakyReLU after the sum replaces the trunk's last one
            trunk[-1] = ResidualBottleneck(width, norm, _leaky)
        self.trunk = nn.Sequential(*trunk)
        self.project = TextProjection(text_dim, proj_dim, proj_norm)
        self.joint = nn.Sequential(
            nn.Conv2d(width + proj_dim, width, 1, 1, 0, bias=uses_bias(norm)), norm2d(norm, width), _leaky(),
        )
        self.head = nn.Conv2d(width, 1, 4, 1, 0)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        feats = self.trunk(x)
        text = self.project(h).view(h.shape[0], -1, 1, 1).expand(-1, -1, feats.shape[2], feats.shape[3])
        return self.head(self.joint(torch.cat([feats, text], 1))).flatten()
