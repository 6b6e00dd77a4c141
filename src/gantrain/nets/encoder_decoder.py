"""DiscoGAN's generator: a conv encoder and a transposed-conv decoder, no skips.

Encoder: 4x4 stride-2 convs (ngf, 2ngf, 4ngf, ...; no norm on the first; LeakyReLU 0.2) down to a
`code_size` x `code_size` map; with `bottleneck` > 0 a further conv (kernel = code_size) squeezes that map to a
1x1 code of `bottleneck` channels. Decoder: the mirror with ReLU, Tanh out. At 64 px, code_size 4 and
bottleneck 100 give the official code's `extra_layers=True` generator (64-128-256-512 then a 100-d code); with
bottleneck 0 the 4x4x512 map itself is the code, its `extra_layers=False` generator (the paper: "four to five"
conv layers, depending on the domain). A larger code_size keeps more spatial layout (fewer stride-2 levels).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from gantrain.errors import GantrainError
from gantrain.nets.norm import norm2d, uses_bias


def _is_pow2(n: int) -> bool:
    return n >= 1 and 2 ** int(math.log2(n)) == n


class EncoderDecoderGenerator(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, image_size: int, ngf: int = 64, bottleneck: int = 100,
                 norm: str = "batch", code_size: int = 4) -> None:
        super().__init__()
        if not _is_pow2(code_size) or code_size < 2:
            raise GantrainError(f"model.code_size must be a power of two >= 2, got {code_size}")
        if not _is_pow2(image_size) or image_size < 4 * code_size:
            raise GantrainError(f"the DiscoGAN generator needs a power-of-two image size >= 4 x model.code_size "
                                f"({4 * code_size}), got {image_size}; lower model.code_size or resize the data")
        if bottleneck < 0:
            raise GantrainError(f"model.bottleneck must be >= 0 (0: no 1x1 code), got {bottleneck}")
        levels = int(math.log2(image_size // code_size))
        bias = uses_bias(norm)
        enc: list[nn.Module] = [nn.Conv2d(in_channels, ngf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        width = ngf
        for _ in range(levels - 1):
            enc += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=bias), norm2d(norm, width * 2), nn.LeakyReLU(0.2, True)]
            width *= 2
        dec: list[nn.Module] = []
        if bottleneck:
            enc += [nn.Conv2d(width, bottleneck, code_size, 1, 0, bias=bias), norm2d(norm, bottleneck), nn.LeakyReLU(0.2, True)]
            dec += [nn.ConvTranspose2d(bottleneck, width, code_size, 1, 0, bias=bias), norm2d(norm, width), nn.ReLU(True)]
        for _ in range(levels - 1):
            dec += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=bias), norm2d(norm, width // 2), nn.ReLU(True)]
            width //= 2
        dec += [nn.ConvTranspose2d(width, out_channels, 4, 2, 1), nn.Tanh()]
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)
        self.size_multiple = image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
