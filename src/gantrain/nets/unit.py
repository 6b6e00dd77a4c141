"""UNIT's shared-latent networks (Liu, Breuel, Kautz 2017): per-domain encoders and decoders whose innermost
residual blocks are shared, so both domains map to one latent space.

Encoder: c7s1-ngf, two stride-2 convs (2ngf, 4ngf), `n_res` residual blocks; the shared block follows.
Decoder: the shared block, `n_res` residual blocks, two stride-2 transposed convs, c7s1-out, Tanh.
"""

from __future__ import annotations

import torch.nn as nn

from gantrain.nets.norm import norm2d, uses_bias
from gantrain.nets.resnet import ResnetBlock


def unit_encoder(in_channels: int, ngf: int, n_res: int, norm: str, dropout: bool) -> nn.Sequential:
    bias = uses_bias(norm)
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias), norm2d(norm, ngf), nn.LeakyReLU(0.2, True)]
    for mult in (1, 2):
        layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, 2, 1, bias=bias), norm2d(norm, ngf * mult * 2), nn.LeakyReLU(0.2, True)]
    layers += [ResnetBlock(ngf * 4, norm, dropout) for _ in range(n_res)]
    return nn.Sequential(*layers)


def unit_decoder(out_channels: int, ngf: int, n_res: int, norm: str, dropout: bool) -> nn.Sequential:
    bias = uses_bias(norm)
    layers: list[nn.Module] = [ResnetBlock(ngf * 4, norm, dropout) for _ in range(n_res)]
    for mult in (4, 2):
        layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, 2, 1, output_padding=1, bias=bias),
                   norm2d(norm, ngf * mult // 2), nn.LeakyReLU(0.2, True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
    return nn.Sequential(*layers)
