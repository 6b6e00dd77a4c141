"""`model=cogan`: Coupled GAN (Liu & Tuzel 2016), the joint distribution of two domains without pairs.

Two GANs, one per domain, trained on unpaired batches {"A", "B"} (e.g. data=digits2negative): the loss is the
sum of the two GAN losses. The generators share their first `shared_g` blocks (null: all but the output
layer, the paper's choice) and the discriminators their last `shared_d` blocks (null: all but the input
layer), so one z gives a corresponding pair (G_A(z), G_B(z)).

`arch: official` (default) is the paper's 28x28 digit nets as the official code has them
(`gantrain.nets.coupled_digits`): PReLU G with non-affine batch norm ending in a sigmoid, LeNet D without norm,
Xavier init. `arch: dcgan` is the DCGAN-style coupled nets of any power-of-two size (Tanh, batch norm, LeakyReLU D),
gantrain's default before and what the digit presets train. Solver, batch and the 50k-iteration budget come from
configs/recipe/cogan.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
from omegaconf import MISSING

from gantrain.data.base import DataInfo
from gantrain.errors import GantrainError
from gantrain.models.base import GANModel
from gantrain.nets import coupled, coupled_digits
from gantrain.nets.init import init_weights


class CoGAN(GANModel):
    default_metrics = ("pair_agreement",)

    @dataclass
    class Config:
        name: str = MISSING
        arch: str = MISSING  # official: the paper's 28x28 digit nets | dcgan: DCGAN-style, any power-of-two size
        z_dim: int = MISSING
        z_dist: str = MISSING
        ngf: int = MISSING  # official: 4x4 map of 8 ngf channels (1024); dcgan: ngf at the output side
        ndf: int = MISSING  # arch=dcgan
        d_widths: list[int] = MISSING  # arch=official: LeNet conv, conv, FC
        d_dropout: float = MISSING  # arch=official: after the FC layer (the Caffe code's 0.5)
        shared_g: Optional[int] = MISSING  # leading G blocks shared by both domains (null: all but the output layer)
        shared_d: Optional[int] = MISSING  # trailing D blocks shared (null: all but the input layer)
        norm_G: str = MISSING  # official: batch = non-affine batch norm
        norm_D: str = MISSING  # official: none only
        loss: str = MISSING  # bce | lsgan | hinge
        init_type: str = MISSING
        init_gain: float = MISSING
        init_bias: float = MISSING

    def __init__(self, cfg, info: DataInfo) -> None:
        super().__init__(cfg, info)
        channels = (info.channels_A, info.channels_B)
        build_g, build_d = self.block_builders(cfg, info)
        self.nets["G"] = coupled.CoupledGenerator(build_g, channels, cfg.shared_g)
        self.nets["D"] = coupled.CoupledDiscriminator(build_d, channels, cfg.shared_d)
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain, cfg.init_bias)

    @staticmethod
    def block_builders(cfg, info: DataInfo) -> tuple[coupled.BlockBuilder, coupled.BlockBuilder]:
        """G's and D's per-domain block lists for `model.arch`; settings the arch has no use for are errors."""
        if cfg.arch == "official":
            coupled_digits.check_size(info.image_size)
            if cfg.norm_D != "none":
                raise GantrainError(f"model.norm_D={cfg.norm_D}: the official CoGAN D has no normalisation; "
                                    "set model.norm_D=none, or model.arch=dcgan")
            return (lambda c: coupled_digits.generator_blocks(cfg.z_dim, c, cfg.ngf, cfg.norm_G),
                    lambda c: coupled_digits.discriminator_blocks(c, cfg.d_widths, cfg.d_dropout))
        if cfg.arch != "dcgan":
            raise GantrainError(f"unknown model.arch {cfg.arch!r}; choose official (the paper's 28x28 nets) or dcgan")
        if cfg.d_dropout > 0:
            raise GantrainError("model.d_dropout applies to model.arch=official only; set model.d_dropout=0")
        return (lambda c: coupled.generator_blocks(cfg.z_dim, c, info.image_size, cfg.ngf, cfg.norm_G),
                lambda c: coupled.discriminator_blocks(c, info.image_size, cfg.ndf, cfg.norm_D))

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        G, D, rt = self.nets["G"], self.nets["D"], self.rt
        real = {"A": batch["A"], "B": batch["B"]}
        z = self.sample_z(real["A"].shape[0])
        out: dict[str, torch.Tensor] = {}
        with rt.autocast():
            fake = dict(zip(("A", "B"), G(z)))
            loss_D = torch.zeros((), device=z.device)
            for d in ("A", "B"):
                d_real, d_fake = self.loss.d_pair(D(real[d], d), D(fake[d].detach(), d))
                out[f"D_{d}"] = (d_real + d_fake).detach()
                loss_D = loss_D + d_real + d_fake
        self.update("D", loss_D)
        with self.frozen(D):
            with rt.autocast():
                losses = {d: self.loss.generator(D(fake[d], d)) for d in ("A", "B")}
                loss_G = losses["A"] + losses["B"]
            self.update("G", loss_G)
        out.update({"D": loss_D.detach(), "G": loss_G.detach(), "G_A": losses["A"].detach(), "G_B": losses["B"].detach()})
        return out

    @torch.no_grad()
    def sample_outputs(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> dict[str, torch.Tensor]:
        """The pair of domain images for each z: {"A": G_A(z), "B": G_B(z)}."""
        G = (nets or self.nets)["G"]
        with self.rt.autocast():
            a, b = G(inputs["z"].to(self.rt.device))
        return {"A": a.float(), "B": b.float()}

    def generate(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> torch.Tensor:
        """Domain A's images (use `sample_outputs` for the pairs)."""
        return self.sample_outputs(inputs, nets)["A"]

    def sample_grids(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> dict[str, torch.Tensor]:
        return {f"samples_{d}": x for d, x in self.sample_outputs(inputs, nets).items()}
