"""Fully connected generators and discriminators: the original GAN and the conditional GAN on MNIST-sized images."""

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


class PaperConditionalGenerator(nn.Module):
    """Mirza & Osindero 2014's MNIST G(z | y): z -> `hidden[0]` ReLU and one-hot y -> `hidden[1]` ReLU, joined ->
    `hidden[2]` ReLU -> C*H*W, with dropout after each hidden layer (the paper applies 0.5 to both nets).

    The paper's output is a sigmoid for pixels in [0, 1]; gantrain's images are in [-1, 1], so the output is Tanh:
    tanh(a) = 2 * sigmoid(2a) - 1, the paper's unit rescaled (the factor 2 is absorbed by the last layer)."""

    def __init__(self, z_dim: int, num_classes: int, out_shape: Sequence[int], hidden: Sequence[int], dropout: float = 0.5):
        super().__init__()
        z_units, y_units, joint_units = hidden
        self.num_classes, self.out_shape = num_classes, tuple(out_shape)
        self.z_branch = nn.Sequential(nn.Linear(z_dim, z_units), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.y_branch = nn.Sequential(nn.Linear(num_classes, y_units), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.joint = nn.Sequential(
            nn.Linear(z_units + y_units, joint_units), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(joint_units, math.prod(self.out_shape)), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        onehot = nn.functional.one_hot(y, self.num_classes).to(z.dtype)
        h = torch.cat([self.z_branch(z), self.y_branch(onehot)], dim=1)
        return self.joint(h).view(z.shape[0], *self.out_shape)


class PaperConditionalDiscriminator(nn.Module):
    """Mirza & Osindero 2014's MNIST D(x | y): flattened x -> maxout `hidden[0]` x `pieces[0]` and one-hot y ->
    maxout `hidden[1]` x `pieces[1]`, joined -> maxout `hidden[2]` x `pieces[2]` -> one logit (the paper's sigmoid
    unit, applied by the BCE-with-logits loss); dropout after each maxout layer."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, hidden: Sequence[int], pieces: Sequence[int],
                 dropout: float = 0.5):
        super().__init__()
        (x_units, y_units, joint_units), (x_pieces, y_pieces, joint_pieces) = hidden, pieces
        self.num_classes = num_classes
        self.x_branch = nn.Sequential(Maxout(math.prod(in_shape), x_units, x_pieces), nn.Dropout(dropout))
        self.y_branch = nn.Sequential(Maxout(num_classes, y_units, y_pieces), nn.Dropout(dropout))
        self.joint = nn.Sequential(Maxout(x_units + y_units, joint_units, joint_pieces), nn.Dropout(dropout))
        self.head = nn.Linear(joint_units, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        onehot = nn.functional.one_hot(y, self.num_classes).to(x.dtype)
        h = torch.cat([self.x_branch(x.flatten(1)), self.y_branch(onehot)], dim=1)
        return self.head(self.joint(h)).squeeze(1)

    def forward_with_classes(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, None]:
        """(logit, None): the label enters at the input, so there is no class readout (as ConditionalDiscriminator's concat)."""
        return self.forward(x, y), None


class EmbeddingConditionalGenerator(nn.Module):
    """G(z | y) of the popular MLP reimplementation: a learned label embedding joined to z, then `MLPGenerator`
    (LeakyReLU 0.2, `norm` after every hidden layer but the first)."""

    def __init__(self, z_dim: int, num_classes: int, out_shape: Sequence[int], hidden: Sequence[int], norm: str,
                 embed_dim: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.mlp = MLPGenerator(z_dim, out_shape, hidden, norm, cond_dim=embed_dim)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([z, self.embed(y).to(z.dtype)], dim=1))


class EmbeddingConditionalDiscriminator(nn.Module):
    """D(x | y) of the same reimplementation: a learned label embedding joined to the flattened image, then
    `MLPDiscriminator` (LeakyReLU 0.2, dropout after every hidden layer)."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, hidden: Sequence[int], embed_dim: int,
                 dropout: float):
        super().__init__()
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.mlp = MLPDiscriminator(in_shape, hidden, "none", cond_dim=embed_dim, dropout=dropout)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.mlp(x, self.embed(y).to(x.dtype))

    def forward_with_classes(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, None]:
        """(logit, None): the label enters at the input, so there is no class readout."""
        return self.forward(x, y), None
