"""The U-Net generator of pix2pix / the CycleGAN reference, built recursively as the reference builds it.

`num_downs` stride-2 levels (unet_256: 8, unet_128: 7, 32 px images: 5) shrink the input to 1x1; each level's
decoder output is concatenated with its encoder input (the skip). The nesting (`model.model.1.model.1...`)
mirrors the reference's `UnetSkipConnectionBlock`, so its state dicts load with `strict=True`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from gantrain.errors import GantrainError
from gantrain.nets.norm import norm2d, uses_bias


class UnetSkipBlock(nn.Module):
    """down -> submodule -> up, concatenated with the input (except at the outermost level)."""

    def __init__(
        self,
        outer: int,
        inner: int,
        in_channels: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        dropout: bool = False,
        bias_without_norm: bool = True,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        bias = uses_bias(norm, bias_without_norm)
        in_channels = outer if in_channels is None else in_channels
        downconv = nn.Conv2d(in_channels, inner, 4, stride=2, padding=1, bias=bias)
        if outermost:
            layers = [downconv, submodule, nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2, True), downconv,
                      nn.ReLU(True), nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias), norm2d(norm, outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), downconv, norm2d(norm, inner), submodule,
                      nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=bias), norm2d(norm, outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net with `num_downs` levels; inputs must have sides divisible by 2**num_downs.

    Channels: ngf, 2ngf, 4ngf, then 8ngf for every deeper level. `dropout` puts Dropout(0.5) after the decoder
    convs of the innermost `num_downs - 5` 8ngf levels (pix2pix's only source of noise).
    """

    def __init__(self, in_channels: int, out_channels: int, num_downs: int = 8, ngf: int = 64, norm: str = "batch",
                 dropout: bool = False, bias_without_norm: bool = True) -> None:
        super().__init__()
        if num_downs < 5:
            raise GantrainError(f"a U-Net generator needs num_downs >= 5 (32 px images), got {num_downs}")
        block = UnetSkipBlock(ngf * 8, ngf * 8, innermost=True, norm=norm, bias_without_norm=bias_without_norm)
        for _ in range(num_downs - 5):
            block = UnetSkipBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=dropout, bias_without_norm=bias_without_norm)
        for outer in (4, 2, 1):
            block = UnetSkipBlock(ngf * outer, ngf * outer * 2, submodule=block, norm=norm, bias_without_norm=bias_without_norm)
        self.model = UnetSkipBlock(out_channels, ngf, in_channels=in_channels, submodule=block, outermost=True, norm=norm,
                                   bias_without_norm=bias_without_norm)
        self.size_multiple = 2**num_downs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
