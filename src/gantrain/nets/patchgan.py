"""PatchGAN discriminators of pix2pix/CycleGAN: one realness logit per receptive-field patch.

`basic` is the 70x70 PatchGAN (n_layers 3): 4x4 convs ndf s2 (no norm), 2ndf s2, 4ndf s2, 8ndf s1, 1 s1,
LeakyReLU 0.2, no sigmoid (30x30 map at 256 px). `pixel` is the 1x1 "PixelGAN". The module trees match the
reference's `NLayerDiscriminator` (`model.N`) and `PixelDiscriminator` (`net.N`) so their weights load.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from gantrain.errors import GantrainError
from gantrain.nets.norm import norm2d, uses_bias

NET_D = ("basic", "n_layers", "pixel")


class NLayerDiscriminator(nn.Module):
    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                 bias_without_norm: bool = True) -> None:
        super().__init__()
        if n_layers < 1:
            raise GantrainError(f"model.n_layers_D must be >= 1, got {n_layers}")
        bias = uses_bias(norm, bias_without_norm)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=bias), norm2d(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=bias), norm2d(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The patch logits plus every LeakyReLU activation (for feature-matching losses)."""
        feats = []
        for layer in self.model:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                feats.append(x)
        return x, feats


class PixelDiscriminator(nn.Module):
    def __init__(self, in_channels: int, ndf: int = 64, norm: str = "instance", bias_without_norm: bool = True) -> None:
        super().__init__()
        bias = uses_bias(norm, bias_without_norm)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1, 1, 0), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, 1, 0, bias=bias), norm2d(norm, ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, 1, 0, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for layer in self.net:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                feats.append(x)
        return x, feats


def build_patch_discriminator(kind: str, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                              bias_without_norm: bool = True) -> nn.Module:
    """`netD` by the reference's names: basic (70x70, 3 layers), n_layers (`n_layers_D`), pixel (1x1)."""
    if kind == "basic":
        return NLayerDiscriminator(in_channels, ndf, 3, norm, bias_without_norm)
    if kind == "n_layers":
        return NLayerDiscriminator(in_channels, ndf, n_layers, norm, bias_without_norm)
    if kind == "pixel":
        return PixelDiscriminator(in_channels, ndf, norm, bias_without_norm)
    raise GantrainError(f"unknown netD {kind!r}; choose one of: {', '.join(NET_D)}")
