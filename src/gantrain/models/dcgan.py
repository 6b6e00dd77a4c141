"""`model=dcgan`: the DCGAN architecture (Radford et al. 2016) with the GAN game of `model=gan`."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from gantrain.data.base import DataInfo
from gantrain.models.gan import GAN
from gantrain.nets.dcgan import DCGANDiscriminator, DCGANGenerator


class DCGAN(GAN):
    @dataclass
    class Config:
        name: str = "dcgan"
        z_dim: int = 100
        z_dist: str = "uniform"
        ngf: int = 128  # G's last hidden width; 4x4 width = ngf * image_size / 8 (paper Fig. 1: 1024 at 64 px)
        ndf: int = 128  # D's first width (official faces code; the paper gives no D widths)
        norm_G: str = "batch"
        norm_D: str = "batch"  # use none or layer with wgan-gp (the penalty is per-sample)
        loss: str = "bce"
        d_steps: int = 1
        gp_weight: float = 10.0
        clip_value: float = 0.01
        augment: str = ""
        topk_gamma: float = 1.0  # top-k G updates (Sinha et al. 2020): keep k fakes, k *= gamma per epoch; 1 = off
        topk_min: float = 0.5  # the floor of k as a share of the batch (the paper's nu)
        init_type: str = "normal"
        init_gain: float = 0.02

    def build_nets(self, cfg, info: DataInfo) -> tuple[nn.Module, nn.Module]:
        return (
            DCGANGenerator(cfg.z_dim, info.channels, info.image_size, cfg.ngf, cfg.norm_G),
            DCGANDiscriminator(info.channels, info.image_size, cfg.ndf, cfg.norm_D),
        )
