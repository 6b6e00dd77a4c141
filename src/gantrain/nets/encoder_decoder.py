"""DiscoGAN's generator: a conv encoder down to a 1x1 bottleneck and a transposed-conv decoder, no skips.

Encoder: 4x4 stride-2 convs (ngf, 2ngf, 4ngf, ...; no norm on the first; LeakyReLU 0.2) down to 4x4, then a 4x4
conv to a 1x1 `bottleneck` code. Decoder: the mirror with ReLU, Tanh out. 64 px gives the official 64-128-256-512
encoder with a 100-d code.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from gantrain.errors import GantrainError
from gantrain.nets.norm import norm2d, uses_bias


class EncoderDecoderGenerator(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, image_size: int, ngf: int = 64, bottleneck: int = 100,
                 norm: str = "batch") -> None:
        super().__init__()
        levels = int(math.log2(image_size)) - 2
        if image_size < 16 or 2 ** (levels + 2) != image_size:
            raise GantrainError(f"the DiscoGAN generator needs a power-of-two image size >= 16, got {image_size}")
        bias = uses_bias(norm)
        enc: list[nn.Module] = [nn.Conv2d(in_channels, ngf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        width = ngf
        for _ in range(levels - 1):
            enc += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=bias), norm2d(norm, width * 2), nn.LeakyReLU(0.2, True)]
            width *= 2
        enc += [nn.Conv2d(width, bottleneck, 4, 1, 0, bias=bias), norm2d(norm, bottleneck), nn.LeakyReLU(0.2, True)]
        dec: list[nn.Module] = [nn.ConvTranspose2d(bottleneck, width, 4, 1, 0, bias=bias), norm2d(norm, width), nn.ReLU(True)]
        for _ in range(levels - 1):
            dec += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=bias), norm2d(norm, width // 2), nn.ReLU(True)]
            width //= 2
        dec += [nn.ConvTranspose2d(width, out_channels, 4, 2, 1), nn.Tanh()]
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)
        self.size_multiple = image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
