"""CoGAN's coupled nets (Liu & Tuzel 2016): weight sharing between two domains' G and D.

`CoupledGenerator`: the first `shared` blocks (z side: high-level structure) are one module used by both
domains; the remaining blocks (down to the output layer) exist once per domain. `CoupledDiscriminator`: the
first blocks (pixel side: low-level features) are per domain and the last `shared` blocks, including the
logit layer, are one module. Both take a block builder (channels -> list of blocks), so the same sharing
serves the DCGAN-style blocks below and the official 28x28 digit blocks (`gantrain.nets.coupled_digits`).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from gantrain.errors import GantrainError
from gantrain.nets.dcgan import _levels
from gantrain.nets.norm import norm2d, uses_bias

DOMAINS = ("A", "B")
BlockBuilder = Callable[[int], list[nn.Module]]  # image channels of one domain -> that domain's blocks


def generator_blocks(z_dim: int, channels: int, image_size: int, ngf: int, norm: str) -> list[nn.Module]:
    """DCGAN G as a list of blocks: z -> 4x4, then one block per doubling, the last ending in Tanh."""
    levels = _levels(image_size)
    width = ngf * 2 ** (levels - 1)
    bias = uses_bias(norm)
    blocks = [nn.Sequential(nn.ConvTranspose2d(z_dim, width, 4, 1, 0, bias=bias), norm2d(norm, width), nn.ReLU(inplace=True))]
    for _ in range(levels - 1):
        blocks.append(nn.Sequential(nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=bias), norm2d(norm, width // 2), nn.ReLU(inplace=True)))
        width //= 2
    blocks.append(nn.Sequential(nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Tanh()))
    return blocks


def discriminator_blocks(channels: int, image_size: int, ndf: int, norm: str) -> list[nn.Module]:
    """DCGAN D as a list of blocks: strided convs (no norm on the first) to 4x4, then the 4x4 logit conv."""
    levels = _levels(image_size)
    blocks = [nn.Sequential(nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True))]
    width = ndf
    for _ in range(levels - 1):
        blocks.append(nn.Sequential(nn.Conv2d(width, width * 2, 4, 2, 1, bias=uses_bias(norm)), norm2d(norm, width * 2),
                                    nn.LeakyReLU(0.2, inplace=True)))
        width *= 2
    blocks.append(nn.Sequential(nn.Conv2d(width, 1, 4, 1, 0), nn.Flatten(0)))
    return blocks


def _check(shared: int, total: int, what: str, key: str) -> None:
    if not 0 <= shared < total:
        raise GantrainError(f"model.{key}={shared} is out of range: {what} has {total} blocks, share 0 to {total - 1}")


class CoupledGenerator(nn.Module):
    def __init__(self, build: BlockBuilder, channels: tuple[int, int], shared: int | None = None) -> None:
        super().__init__()
        first = build(channels[0])
        total = len(first)
        shared = total - 1 if shared is None else shared
        _check(shared, total, "G", "shared_g")
        self.shared_blocks = shared
        self.shared = nn.Sequential(*first[:shared])
        self.tails = nn.ModuleDict({d: nn.Sequential(*build(c)[shared:]) for d, c in zip(DOMAINS, channels)})

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair (x_A, x_B) for the same z."""
        h = self.shared(z.view(z.shape[0], -1, 1, 1))
        return self.tails["A"](h), self.tails["B"](h)


class CoupledDiscriminator(nn.Module):
    def __init__(self, build: BlockBuilder, channels: tuple[int, int], shared: int | None = None) -> None:
        super().__init__()
        heads = {d: build(c) for d, c in zip(DOMAINS, channels)}
        total = len(heads["A"])
        shared = total - 1 if shared is None else shared
        _check(shared, total, "D", "shared_d")
        self.shared_blocks = shared
        split = total - shared
        self.heads = nn.ModuleDict({d: nn.Sequential(*blocks[:split]) for d, blocks in heads.items()})
        self.shared = nn.Sequential(*build(channels[0])[split:])

    def forward(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        """One logit per image of `domain` ("A" or "B")."""
        return self.shared(self.heads[domain](x))
