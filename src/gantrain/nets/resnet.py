"""The ResNet generator of the CycleGAN reference implementation (Johnson et al. style), module for module.

The layer tree (one `nn.Sequential` named `model`, blocks with a `conv_block` Sequential) reproduces
pytorch-CycleGAN-and-pix2pix's `ResnetGenerator`, so its state dicts (`latest_net_G_A.pth`, the model-zoo
`horse2zebra.pth`, ...) load here with `strict=True`: `model.1` first 7x7 conv, `model.4`/`model.7` the
down convs, `model.10...` the residual blocks, then two transposed convs and the last 7x7 conv.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from gantrain.errors import GantrainError
from gantrain.nets.norm import norm2d, uses_bias

PADDINGS = ("reflect", "replicate", "zero")


def _pad(kind: str, amount: int) -> tuple[list[nn.Module], int]:
    """(pad layers, conv padding) for a padding type, as the reference builds them."""
    if kind == "reflect":
        return [nn.ReflectionPad2d(amount)], 0
    if kind == "replicate":
        return [nn.ReplicationPad2d(amount)], 0
    if kind == "zero":
        return [], amount
    raise GantrainError(f"unknown padding type {kind!r}; choose one of: {', '.join(PADDINGS)}")


class ResnetBlock(nn.Module):
    """x + [pad, conv3x3, norm, ReLU, (dropout 0.5), pad, conv3x3, norm](x).

    `dropout_last` moves the dropout after the second norm, where UNIT's code has it (INSResBlock).
    """

    def __init__(self, dim: int, norm: str = "instance", dropout: bool = False, padding: str = "reflect",
                 bias_without_norm: bool = True, dropout_last: bool = False) -> None:
        super().__init__()
        bias = uses_bias(norm, bias_without_norm)
        layers: list[nn.Module] = []
        pad, p = _pad(padding, 1)
        layers += pad + [nn.Conv2d(dim, dim, 3, padding=p, bias=bias), norm2d(norm, dim), nn.ReLU(True)]
        if dropout and not dropout_last:
            layers.append(nn.Dropout(0.5))
        pad, p = _pad(padding, 1)
        layers += pad + [nn.Conv2d(dim, dim, 3, padding=p, bias=bias), norm2d(norm, dim)]
        if dropout and dropout_last:
            layers.append(nn.Dropout(0.5))
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, d(2ngf), d(4ngf), n_blocks x R(4ngf), u(2ngf), u(ngf), c7s1-out, Tanh.

    Any input whose sides are multiples of 4 comes back at its own size.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ngf: int = 64,
        norm: str = "instance",
        dropout: bool = False,
        n_blocks: int = 9,
        padding: str = "reflect",
        n_downsampling: int = 2,
        bias_without_norm: bool = True,
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise GantrainError(f"a ResNet generator needs n_blocks >= 0, got {n_blocks}")
        bias = uses_bias(norm, bias_without_norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, padding=0, bias=bias),
                                   norm2d(norm, ngf), nn.ReLU(True)]
        for i in range(n_downsampling):
            mult = 2**i
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                       norm2d(norm, ngf * mult * 2), nn.ReLU(True)]
        mult = 2**n_downsampling
        layers += [ResnetBlock(ngf * mult, norm, dropout, padding, bias_without_norm) for _ in range(n_blocks)]
        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                       norm2d(norm, ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.size_multiple = 2**n_downsampling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def encode(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """Outputs of `self.model[i]` for each i in `layers` (ascending), stopping after the last one.

        CUT's PatchNCE taps the encoder this way (layer 0 = the reflection-padded input); no layer past the
        last tap runs, so the decoder costs nothing here.
        """
        if not layers or sorted(set(layers)) != list(layers) or layers[0] < 0 or layers[-1] >= len(self.model):
            raise GantrainError(f"encoder layers must be ascending indices in 0..{len(self.model) - 1}, got {list(layers)}")
        feats = []
        for i, layer in enumerate(self.model):
            x = layer(x)
            if i in layers:
                feats.append(x)
                if i == layers[-1]:
                    break
        return feats
