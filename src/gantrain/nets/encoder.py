"""Image -> latent encoders (BiGAN's E, the latent regressor of GAN inversion).

`ConvEncoder` mirrors the DCGAN discriminator (strided convs down to 4x4, then a linear layer to the latent);
`MLPEncoder` is the permutation-invariant encoder of BiGAN's MNIST experiments. Both can be stochastic
(ALI): they then predict a mean and a log-variance and sample with the reparameterisation trick while
training, returning the mean in eval mode (or when `sample=False`).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn

from gantrain.errors import GantrainError
from gantrain.nets.norm import norm1d, norm2d, uses_bias

ENCODER_ARCHS = ("mlp", "dcgan")


def conv_trunk(channels: int, image_size: int, ndf: int, norm: str) -> tuple[nn.Sequential, int]:
    """DCGAN-style strided convs (no norm on the first) from `image_size` down to 4x4; returns (trunk, flat size)."""
    levels = int(math.log2(image_size)) - 2
    if image_size < 8 or 2 ** (levels + 2) != image_size:
        raise GantrainError(f"conv encoders need a power-of-two image size >= 8, got data.image_size={image_size}")
    layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
    width = ndf
    for _ in range(levels - 1):
        layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=uses_bias(norm)), norm2d(norm, width * 2), nn.LeakyReLU(0.2, inplace=True)]
        width *= 2
    layers.append(nn.Flatten())
    return nn.Sequential(*layers), width * 16


def mlp_trunk(in_features: int, hidden: Sequence[int], norm: str, dropout: float = 0.0) -> tuple[nn.Sequential, int]:
    """Linear + (norm after the first layer) + LeakyReLU 0.2 (+ dropout) per hidden width; returns (trunk, width)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for i, h in enumerate(hidden):
        layers.append(nn.Linear(width, h, bias=i == 0 or norm != "batch"))
        if i > 0:
            layers.append(norm1d(norm, h))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    return nn.Sequential(*layers), width


class Encoder(nn.Module):
    """A trunk to features, then a linear map to the latent (twice its size when stochastic)."""

    def __init__(self, trunk: nn.Module, features: int, z_dim: int, stochastic: bool = False) -> None:
        super().__init__()
        self.trunk = trunk
        self.z_dim = z_dim
        self.stochastic = stochastic
        self.head = nn.Linear(features, 2 * z_dim if stochastic else z_dim)

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mean, log-variance); the log-variance is None for a deterministic encoder."""
        h = self.head(self.trunk(x))
        if not self.stochastic:
            return h, None
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(-10, 10)

    def forward(self, x: torch.Tensor, sample: bool | None = None) -> torch.Tensor:
        mean, logvar = self.moments(x)
        if logvar is None or not (self.training if sample is None else sample):
            return mean
        return mean + torch.randn_like(mean) * (0.5 * logvar).exp()


class ConvEncoder(Encoder):
    def __init__(self, channels: int, image_size: int, z_dim: int, ndf: int = 64, norm: str = "batch", stochastic: bool = False):
        trunk, features = conv_trunk(channels, image_size, ndf, norm)
        super().__init__(trunk, features, z_dim, stochastic)


class MLPEncoder(Encoder):
    def __init__(self, in_shape: Sequence[int], z_dim: int, hidden: Sequence[int], norm: str = "batch", stochastic: bool = False):
        trunk, features = mlp_trunk(math.prod(in_shape), hidden, norm)
        super().__init__(trunk, features, z_dim, stochastic)


def build_encoder(arch: str, channels: int, image_size: int, z_dim: int, *, ndf: int = 64, hidden: Sequence[int] = (1024, 1024),
                  norm: str = "batch", stochastic: bool = False) -> Encoder:
    """An encoder by architecture name (`mlp` or `dcgan`)."""
    if arch == "dcgan":
        return ConvEncoder(channels, image_size, z_dim, ndf, norm, stochastic)
    if arch == "mlp":
        return MLPEncoder((channels, image_size, image_size), z_dim, hidden, norm, stochastic)
    raise GantrainError(f"unknown encoder arch {arch!r}; choose one of: {', '.join(ENCODER_ARCHS)}")
