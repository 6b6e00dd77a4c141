"""BiGAN/ALI's joint discriminator D(x, z): image features and latent features, fused, then one logit."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn

from gantrain.nets.encoder import conv_trunk, mlp_trunk


class JointDiscriminator(nn.Module):
    """x -> features (conv or MLP trunk), z -> MLP features, concatenated -> MLP -> logit.

    `dropout` (ALI uses 0.2) applies after every hidden layer of the three MLPs.
    """

    def __init__(self, arch: str, in_shape: Sequence[int], z_dim: int, *, ndf: int = 64, x_hidden: Sequence[int] = (1024,),
                 z_hidden: Sequence[int] = (1024,), joint_hidden: Sequence[int] = (1024,), norm: str = "none",
                 dropout: float = 0.0) -> None:
        super().__init__()
        channels, size = in_shape[0], in_shape[-1]
        if arch == "dcgan":
            self.x_net, x_width = conv_trunk(channels, size, ndf, norm)
        else:
            self.x_net, x_width = mlp_trunk(math.prod(in_shape), x_hidden, norm, dropout)
        self.z_net, z_width = mlp_trunk(z_dim, z_hidden, "none", dropout)
        self.joint, width = mlp_trunk(x_width + z_width, joint_hidden, "none", dropout)
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.x_net(x), self.z_net(z)], dim=1)
        return self.head(self.joint(h)).squeeze(1)
