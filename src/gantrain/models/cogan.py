"""`model=cogan`: Coupled GAN (Liu & Tuzel 2016), the joint distribution of two domains without pairs.

Two GANs, one per domain, trained on unpaired batches {"A", "B"} (e.g. data=digits2negative): the loss is the
sum of the two GAN losses. The generators share their first `shared_g` blocks (null: all but the output
layer, the paper's choice) and the discriminators their last `shared_d` blocks (null: all but the input
layer), so one z gives a corresponding pair (G_A(z), G_B(z)).

Paper recipe: z 100-d U[-1, 1], Adam 2e-4 (0.5, 0.999), weight decay 5e-4, batch 128 (optimiser and batch
settings come from configs/recipe/cogan.yaml). Our nets are DCGAN-style (Tanh output, BN, non-saturating
BCE) rather than the paper's PReLU/sigmoid Caffe nets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
from omegaconf import MISSING

from gantrain.data.base import DataInfo
from gantrain.models.base import GANModel
from gantrain.nets.coupled import CoupledDiscriminator, CoupledGenerator
from gantrain.nets.init import init_weights


class CoGAN(GANModel):
    default_metrics = ("pair_agreement",)

    @dataclass
    class Config:
        name: str = MISSING
        z_dim: int = MISSING
        z_dist: str = MISSING
        ngf: int = MISSING
        ndf: int = MISSING
        shared_g: Optional[int] = MISSING  # leading G blocks shared by both domains (null: all but the output layer)
        shared_d: Optional[int] = MISSING  # trailing D blocks shared (null: all but the input layer)
        norm_G: str = MISSING
        norm_D: str = MISSING
        loss: str = MISSING  # bce | lsgan | hinge
        init_type: str = MISSING
        init_gain: float = MISSING

    def __init__(self, cfg, info: DataInfo) -> None:
        super().__init__(cfg, info)
        channels = (info.channels_A, info.channels_B)
        self.nets["G"] = CoupledGenerator(cfg.z_dim, channels, info.image_size, cfg.ngf, cfg.norm_G, cfg.shared_g)
        self.nets["D"] = CoupledDiscriminator(channels, info.image_size, cfg.ndf, cfg.norm_D, cfg.shared_d)
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain)

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
