"""`model=dcgan`: the DCGAN architecture (Radford et al. 2016) with the GAN game of `model=gan`."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn
from omegaconf import MISSING

from gantrain.data.base import DataInfo
from gantrain.models.gan import GAN, GameConfig
from gantrain.nets.dcgan import DCGANDiscriminator, DCGANGenerator


class DCGAN(GAN):
    @dataclass
    class Config(GameConfig):
        ngf: int = MISSING  # G's last hidden width; 4x4 width = ngf * image_size / 8
        ndf: int = MISSING  # D's first width

    def build_nets(self, cfg, info: DataInfo) -> tuple[nn.Module, nn.Module]:
        return (
            DCGANGenerator(cfg.z_dim, info.channels, info.image_size, cfg.ngf, cfg.norm_G),
            DCGANDiscriminator(info.channels, info.image_size, cfg.ndf, cfg.norm_D),
        )
