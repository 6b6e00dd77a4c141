"""Image-to-image generators by the reference implementation's `netG` names.

resnet_9blocks / resnet_6blocks (any `resnet_<N>blocks`), unet_256 (8 levels), unet_128 (7) and any
`unet_<2**k>` (e.g. unet_32 for 32 px digits: 5 levels).
"""

from __future__ import annotations

import math
import re

import torch.nn as nn

from gantrain.errors import GantrainError
from gantrain.nets.resnet import ResnetGenerator
from gantrain.nets.unet import UnetGenerator

NET_G = ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128")


def build_generator(kind: str, in_channels: int, out_channels: int, ngf: int = 64, norm: str = "instance",
                    dropout: bool = False, bias_without_norm: bool = True) -> nn.Module:
    m = re.fullmatch(r"resnet_(\d+)blocks", kind)
    if m:
        return ResnetGenerator(in_channels, out_channels, ngf, norm, dropout, n_blocks=int(m.group(1)), bias_without_norm=bias_without_norm)
    m = re.fullmatch(r"unet_(\d+)", kind)
    if m:
        size = int(m.group(1))
        downs = int(round(math.log2(size))) if size > 0 else 0
        if 2**downs != size or downs < 5:
            raise GantrainError(f"netG={kind}: the U-Net size must be a power of two >= 32 (e.g. unet_256, unet_128, unet_32)")
        return UnetGenerator(in_channels, out_channels, downs, ngf, norm, dropout, bias_without_norm)
    raise GantrainError(f"unknown netG {kind!r}; choose one of: {', '.join(NET_G)} (or resnet_<N>blocks, unet_<2^k>)")


def size_multiple(net: nn.Module) -> int:
    """What the input's sides must be divisible by for this generator (4 for ResNet, 2**levels for U-Net)."""
    return int(getattr(net, "size_multiple", 1))
