"""The critic of the official DualGAN code (duxingren14/DualGAN, TensorFlow), offered beside the paper's PatchGAN.

The paper (Yi et al. 2017, Sec. 3.2) uses pix2pix's 70x70 PatchGAN (`netD: basic`, the default). The official
code's critic is a DCGAN-style stack instead: 5x5 convs with TensorFlow's 'SAME' padding, ndf s2 (no norm), 2ndf s2,
4ndf s2, 8ndf s1, LeakyReLU 0.2, every conv with a bias, and then either a linear layer on the flattened map (one
score per image: the 2017 WGAN code, `DualNet.discriminator`'s `h4 = linear(...)`, `netD: official_linear`) or a
1-channel 5x5 conv (a score map: the later code's patch critic, `netD: official_conv`). No sigmoid in either.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from gantrain.errors import GantrainError
from gantrain.nets.norm import norm2d

OFFICIAL_CRITICS = ("official_linear", "official_conv")


def _conv5(cin: int, cout: int, stride: int) -> nn.Sequential:
    """A 5x5 conv padded as TensorFlow's 'SAME' pads it on even sides: (1 before, 2 after) at stride 2, 2 each at 1."""
    pad = nn.ZeroPad2d((1, 2, 1, 2)) if stride == 2 else nn.ZeroPad2d(2)
    return nn.Sequential(pad, nn.Conv2d(cin, cout, 5, stride, 0))


class DualGANCritic(nn.Module):
    def __init__(self, kind: str, in_channels: int, ndf: int, norm: str, image_size: int) -> None:
        super().__init__()
        if kind not in OFFICIAL_CRITICS:
            raise GantrainError(f"unknown DualGAN critic {kind!r}; choose one of: {', '.join(OFFICIAL_CRITICS)}")
        if image_size % 8:
            raise GantrainError(f"netD={kind} needs an image size divisible by 8, got {image_size}; set data.crop_size")
        layers: list[nn.Module] = [_conv5(in_channels, ndf, 2), nn.LeakyReLU(0.2, True)]
        for cin, cout, stride in ((ndf, ndf * 2, 2), (ndf * 2, ndf * 4, 2), (ndf * 4, ndf * 8, 1)):
            layers += [_conv5(cin, cout, stride), norm2d(norm, cout), nn.LeakyReLU(0.2, True)]
        self.body = nn.Sequential(*layers)
        side = image_size // 8
        self.head = nn.Linear(ndf * 8 * side * side, 1) if kind == "official_linear" else _conv5(ndf * 8, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return self.head(h.flatten(1)) if isinstance(self.head, nn.Linear) else self.head(h)
