"""A multi-scale discriminator: copies of one D design, each judging the image at half the previous resolution.

Coarse copies see global structure that a full-resolution patch D cannot, so large images need no deeper D.
`gaussian` halves as UNIT's paper-version code does (mingyuliutw/UNIT src/trainers/cocogan_nets.py, COCOMsDis):
a 3x3 binomial blur [1, 2, 1]/4 (what cv2.getGaussianKernel(3, -1) returns) on replicate padding, then every
second pixel. `avgpool` is the 3x3 stride-2 average pool of pix2pixHD / MUNIT-style multi-scale Ds. Any per-scale
builder fits (a PatchGAN from `build_patch_discriminator`, UNIT's conv D, ...).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from gantrain.errors import GantrainError

DOWNSAMPLES = ("gaussian", "avgpool")


class MultiScaleDiscriminator(nn.Module):
    """`n_scales` nets from `build()`; forward returns their outputs, finest first (one list entry per scale)."""

    def __init__(self, build: Callable[[], nn.Module], n_scales: int = 3, downsample: str = "gaussian") -> None:
        super().__init__()
        if n_scales < 1:
            raise GantrainError(f"a multi-scale discriminator needs n_scales >= 1, got {n_scales}")
        if downsample not in DOWNSAMPLES:
            raise GantrainError(f"unknown downsampling {downsample!r}; choose one of: {', '.join(DOWNSAMPLES)}")
        self.scales = nn.ModuleList(build() for _ in range(n_scales))
        self.downsample = downsample
        taps = torch.tensor([1.0, 2.0, 1.0]) / 4
        # a constant of the design, not a weight: kept out of state dicts so checkpoints hold only the scales' nets
        self.register_buffer("blur", torch.outer(taps, taps)[None, None], persistent=False)

    def half(self, x: torch.Tensor) -> torch.Tensor:
        """The next coarser copy of `x` (sides ceil(side / 2))."""
        if self.downsample == "avgpool":
            return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        c = x.shape[1]
        kernel = self.blur.to(x.dtype).expand(c, 1, 3, 3)
        # the stride-2 blur is the full blur sampled at even pixels, as the reference subsamples it
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, stride=2, groups=c)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, net in enumerate(self.scales):
            if i:
                x = self.half(x)
            outs.append(net(x))
        return outs
