"""UNIT's shared-latent networks (Liu, Breuel, Kautz 2017): per-domain encoders and decoders whose innermost
residual blocks are shared, so both domains map to one latent space.

`official` (the paper-version code, mingyuliutw/UNIT src/trainers/cocogan_nets.py COCOResGen2 and common_net.py):
  Encoder: 7x7 s1 conv (ngf), two 3x3 s2 convs (2ngf, 4ngf), zero padding, LeakyReLU 0.01, no norm; `n_res`
  zero-padded residual blocks (norm and dropout inside the blocks only); the shared block follows.
  Decoder: the shared block, `n_res` residual blocks, two 3x3 s2 transposed convs with LeakyReLU 0.01 and no norm,
  a 1x1 transposed conv to the image, Tanh.
  Discriminator (COCOMsDis per scale): `n_layers` 3x3 s2 convs doubling from ndf, LeakyReLU 0.01, no norm, then a
  1x1 conv to one logit per position.
`gantrain` (gantrain's earlier nets): reflection-padded 7x7 convs at both ends, norm + LeakyReLU 0.2 after every
  inner conv, CycleGAN-style residual blocks; D from the PatchGAN builder.
"""

from __future__ import annotations

import torch.nn as nn

from gantrain.errors import GantrainError
from gantrain.nets.norm import norm2d, uses_bias
from gantrain.nets.resnet import ResnetBlock

ARCHS = ("official", "gantrain")
OFFICIAL_SLOPE = 0.01  # nn.LeakyReLU's default, which the official layers use


def check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise GantrainError(f"unknown model.arch {arch!r} for unit; choose one of: {', '.join(ARCHS)}")


def unit_res_block(dim: int, norm: str, dropout: bool, arch: str) -> ResnetBlock:
    """official: zero padding, dropout after the second norm (INSResBlock); gantrain: CycleGAN's block."""
    check_arch(arch)
    if arch == "official":
        return ResnetBlock(dim, norm, dropout, padding="zero", dropout_last=True)
    return ResnetBlock(dim, norm, dropout)


def unit_encoder(in_channels: int, ngf: int, n_res: int, norm: str, dropout: bool, arch: str) -> nn.Sequential:
    check_arch(arch)
    if arch == "official":
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ngf, 7, 1, 3), nn.LeakyReLU(OFFICIAL_SLOPE, True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, 2, 1), nn.LeakyReLU(OFFICIAL_SLOPE, True)]
    else:
        bias = uses_bias(norm)
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias), norm2d(norm, ngf), nn.LeakyReLU(0.2, True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, 2, 1, bias=bias), norm2d(norm, ngf * mult * 2),
                       nn.LeakyReLU(0.2, True)]
    layers += [unit_res_block(ngf * 4, norm, dropout, arch) for _ in range(n_res)]
    return nn.Sequential(*layers)


def unit_decoder(out_channels: int, ngf: int, n_res: int, norm: str, dropout: bool, arch: str) -> nn.Sequential:
    check_arch(arch)
    layers: list[nn.Module] = [unit_res_block(ngf * 4, norm, dropout, arch) for _ in range(n_res)]
    if arch == "official":
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, 2, 1, output_padding=1),
                       nn.LeakyReLU(OFFICIAL_SLOPE, True)]
        layers += [nn.ConvTranspose2d(ngf, out_channels, 1), nn.Tanh()]
        return nn.Sequential(*layers)
    bias = uses_bias(norm)
    for mult in (4, 2):
        layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, 2, 1, output_padding=1, bias=bias),
                   norm2d(norm, ngf * mult // 2), nn.LeakyReLU(0.2, True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def unit_discriminator(in_channels: int, ndf: int, n_layers: int) -> nn.Sequential:
    """The official per-domain, per-scale D: no norm, widths ndf * 2^i without a cap, a logit map at side / 2^n."""
    if n_layers < 1:
        raise GantrainError(f"model.n_layers_D must be >= 1, got {n_layers}")
    layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 3, 2, 1), nn.LeakyReLU(OFFICIAL_SLOPE, True)]
    ch = ndf
    for _ in range(1, n_layers):
        layers += [nn.Conv2d(ch, ch * 2, 3, 2, 1), nn.LeakyReLU(OFFICIAL_SLOPE, True)]
        ch *= 2
    layers.append(nn.Conv2d(ch, 1, 1))
    return nn.Sequential(*layers)
