"""`model=bigan`: BiGAN (Donahue et al. 2017) / ALI (Dumoulin et al. 2017).

Three nets: G(z), an encoder E(x) and a joint discriminator D(x, z). D labels (x, E(x)) real and (G(z), z)
fake. G and E are trained with inverted labels (non-saturating): E pushes D(x, E(x)) towards "fake" and G
pushes D(G(z), z) towards "real". Users often think E "never trains" because it sees no reconstruction
loss: its only signal is this inverted-label term, and at the optimum E inverts G.

Paper defaults (MNIST): z 50-d uniform on [-1, 1], MLPs of 1024 units, Adam 2e-4 / beta1 0.5, batch 128
(weight decay 2.5e-5, 200 epochs constant then 200 of exponential decay to 0.01x come from configs/recipe/bigan.yaml).
The MLP G is the official one (jeffdonahue/bigan, deconvnet_mnist_mlp with train_mnist.sh's --gen_net): batch norm
and ReLU after each of its 1024-unit layers; `g_style: lrelu` is gantrain's earlier LeakyReLU G.
`encoder: stochastic` gives ALI's reparameterised encoder; `d_dropout: 0.2` ALI's dropout in D.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from omegaconf import MISSING

from gantrain.data.base import DataInfo
from gantrain.errors import GantrainError
from gantrain.models.base import GANModel
from gantrain.nets.dcgan import DCGANGenerator
from gantrain.nets.encoder import ENCODER_ARCHS, build_encoder
from gantrain.nets.init import init_weights
from gantrain.nets.joint import JointDiscriminator
from gantrain.nets.mlp import MLPGenerator


class BiGAN(GANModel):
    generator_names = ("G", "E")
    default_metrics = ("classifier", "latent_probe", "reconstruction")

    @dataclass
    class Config:
        name: str = MISSING
        arch: str = MISSING  # mlp (the paper's permutation-invariant MNIST nets) | dcgan (conv G, E and D x-branch)
        z_dim: int = MISSING
        z_dist: str = MISSING  # uniform on [-1, 1] | normal
        encoder: str = MISSING  # deterministic (BiGAN) | stochastic (ALI)
        g_hidden: list[int] = MISSING
        e_hidden: list[int] = MISSING
        d_x_hidden: list[int] = MISSING
        d_z_hidden: list[int] = MISSING  # []: z projected straight into D's second layer (official)
        d_joint_hidden: list[int] = MISSING
        ngf: int = MISSING  # arch=dcgan
        ndf: int = MISSING  # arch=dcgan (E and the x-branch of D)
        norm_G: str = MISSING
        g_style: str = MISSING  # official: norm_G + ReLU after every hidden layer | lrelu: LeakyReLU 0.2, first layer unnormalised
        norm_E: str = MISSING
        norm_D: str = MISSING
        d_dropout: float = MISSING  # ALI: 0.2
        loss: str = MISSING  # bce (non-saturating) | lsgan
        init_type: str = MISSING
        init_gain: float = MISSING

    def __init__(self, cfg, info: DataInfo) -> None:
        super().__init__(cfg, info)
        if cfg.arch not in ENCODER_ARCHS:
            raise GantrainError(f"unknown model.arch {cfg.arch!r}; choose one of: {', '.join(ENCODER_ARCHS)}")
        if cfg.encoder not in ("deterministic", "stochastic"):
            raise GantrainError(f"unknown model.encoder {cfg.encoder!r}; choose deterministic or stochastic")
        if cfg.loss not in ("bce", "lsgan"):
            raise GantrainError(f"model=bigan supports model.loss=bce or lsgan, not {cfg.loss!r} (E needs an inverted-label loss)")
        shape = (info.channels, info.image_size, info.image_size)
        if cfg.g_style not in ("official", "lrelu"):
            raise GantrainError(f"unknown model.g_style {cfg.g_style!r}; choose official (BN + ReLU on every layer) or lrelu")
        if cfg.arch == "dcgan":
            self.nets["G"] = DCGANGenerator(cfg.z_dim, info.channels, info.image_size, cfg.ngf, cfg.norm_G)
        else:
            official = cfg.g_style == "official"
            self.nets["G"] = MLPGenerator(cfg.z_dim, shape, cfg.g_hidden, cfg.norm_G, relu=official, norm_first=official)
        self.nets["E"] = build_encoder(cfg.arch, info.channels, info.image_size, cfg.z_dim, ndf=cfg.ndf, hidden=cfg.e_hidden,
                                       norm=cfg.norm_E, stochastic=cfg.encoder == "stochastic")
        self.nets["D"] = JointDiscriminator(cfg.arch, shape, cfg.z_dim, ndf=cfg.ndf, x_hidden=cfg.d_x_hidden, z_hidden=cfg.d_z_hidden,
                                            joint_hidden=cfg.d_joint_hidden, norm=cfg.norm_D, dropout=cfg.d_dropout)
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain)

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        G, E, D, rt = self.nets["G"], self.nets["E"], self.nets["D"], self.rt
        x = batch["image"]
        z = self.sample_z(x.shape[0])
        with rt.autocast():
            ex = E(x)
            gz = G(z)
            d_real, d_fake = self.loss.d_pair(D(x, ex.detach()), D(gz.detach(), z))
            loss_D = d_real + d_fake
        self.update("D", loss_D)
        with self.frozen(D):
            with rt.autocast():
                loss_E = self.loss.discriminator(D(x, ex), real=False)  # inverted label: E wants (x, E(x)) called fake
                loss_G = self.loss.generator(D(gz, z))  # and G wants (G(z), z) called real
            self.update("E", loss_E)
            self.update("G", loss_G)
        return {"D": loss_D.detach(), "D_real": d_real.detach(), "D_fake": d_fake.detach(), "E": loss_E.detach(), "G": loss_G.detach()}

    @torch.no_grad()
    def generate(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> torch.Tensor:
        G = (nets or self.nets)["G"]
        with self.rt.autocast():
            return G(inputs["z"].to(self.rt.device)).float()

    @torch.no_grad()
    def encode(self, x: torch.Tensor, nets: nn.ModuleDict | None = None) -> torch.Tensor:
        """E(x) (the mean for a stochastic encoder)."""
        E = (nets or self.nets)["E"]
        with self.rt.autocast():
            return E(x.to(self.rt.device), sample=False).float()
