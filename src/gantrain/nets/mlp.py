"""Fully connected generator and discriminator (the original GAN on MNIST-sized images)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn

from gantrain.nets.norm import norm1d


class MLPGenerator(nn.Module):
    """z -> hidden layers (LeakyReLU 0.2, or ReLU with `relu`) -> C*H*W -> Tanh.

    `norm` follows every hidden layer but the first unless `norm_first` (BiGAN's official G normalises all)."""

    def __init__(self, z_dim: int, out_shape: Sequence[int], hidden: Sequence[int], norm: str = "none", cond_dim: int = 0,
                 relu: bool = False, norm_first: bool = False):
        super().__init__()
        self.out_shape = tuple(out_shape)
        layers: list[nn.Module] = []
        width = z_dim + cond_dim
        for i, h in enumerate(hidden):
            layers += [nn.Linear(width, h)]
            if i > 0 or norm_first:
                layers += [norm1d(norm, h)]
            layers += [nn.ReLU(inplace=True) if relu else nn.LeakyReLU(0.2, inplace=True)]
            width = h
        layers += [nn.Linear(width, math.prod(self.out_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    """Flattened image -> hidden layers (LeakyReLU 0.2) -> one logit per image."""

    def __init__(self, in_shape: Sequence[int], hidden: Sequence[int], norm: str = "none", cond_dim: int = 0, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        width = math.prod(in_shape) + cond_dim
        for i, h in enumerate(hidden):
            layers += [nn.Linear(width, h)]
            if i > 0:
                layers += [norm1d(norm, h)]
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            if dropout > 0:
                layers += [nn.Dropout(dropout)]
            width = h
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)
        self.feature_dim = width

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = x.flatten(1)
        if cond is not None:
            h = torch.cat([h, cond], dim=1)
        return self.head(self.features(h)).squeeze(1)


class Maxout(nn.Module):
    """A linear layer to `units * pieces` outputs, then the max over each unit's `pieces` (Goodfellow et al. 2013)."""

    def __init__(self, in_features: int, units: int, pieces: int):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(x.shape[0], self.units, self.pieces).amax(2)


class MaxoutDiscriminator(nn.Module):
    """The original GAN's MNIST D: dropout on the input (`input_dropout`), maxout layers each followed by
    dropout (`dropout`), then one logit. goodfeli/adversarial mnist.yaml: 240 units x 5 pieces twice, input kept
    with probability 0.8 and hidden units with 0.5 (its include probabilities)."""

    def __init__(self, in_shape: Sequence[int], hidden: Sequence[int], pieces: int = 5, input_dropout: float = 0.2,
                 dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(input_dropout)]
        width = math.prod(in_shape)
        for h in hidden:
            layers += [Maxout(width, h, pieces), nn.Dropout(dropout)]
            width = h
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)
        self.feature_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.flatten(1))).squeeze(1)
