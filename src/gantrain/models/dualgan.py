"""`model=dualgan`: DualGAN (Yi et al. 2017): the paper's networks with the official 2017 code's settings.

G_A: A -> B and G_B: B -> A are U-Nets whose dropout is the only noise (z); D_A judges B-domain images, D_B
A-domain ones (the paper's 70x70 PatchGAN critics, their score maps averaged). Wasserstein loss with weight
clipping to [-c, c], TensorFlow's RMSProp 5e-5 (`optim=rmsprop_tf`, as the official TensorFlow code trains),
`d_steps` critic updates per generator update (counted in batches), and
L1 reconstruction weighted lambda_A, lambda_B = 200 (paper range 100-1000). `loss: classic` (or bce/lsgan)
trains the plain GAN game instead, which the authors later preferred.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from gantrain.data.base import DataInfo
from gantrain.errors import GantrainError
from gantrain.losses import clip_weights_
from gantrain.models.translation import TranslationModel
from gantrain.nets.dualgan import OFFICIAL_CRITICS, DualGANCritic
from gantrain.nets.generators import build_generator, size_multiple
from gantrain.nets.init import init_weights


class DualGAN(TranslationModel):

    @dataclass
    class Config:
        name: str = MISSING
        netG: str = MISSING
        netD: str = MISSING  # basic: the paper's 70x70 PatchGAN; official_linear | official_conv: the official code's critics
        n_layers_D: int = MISSING
        ngf: int = MISSING
        ndf: int = MISSING
        norm: str = MISSING
        dropout: bool = MISSING  # the noise z of the paper, realised as dropout
        init_type: str = MISSING
        init_gain: float = MISSING
        lambda_A: float = MISSING  # reconstruction A -> B -> A
        lambda_B: float = MISSING
        recon: str = MISSING  # l1 | l2
        loss: str = MISSING  # wgan (clipping) | wgan-gp | classic (= bce) | lsgan
        clip_value: float = MISSING
        d_steps: int = MISSING  # critic updates per generator update
        gp_weight: float = MISSING

    def __init__(self, cfg, info: DataInfo) -> None:
        if cfg.recon not in ("l1", "l2"):
            raise GantrainError(f"model.recon={cfg.recon} is not valid; choose l1 or l2")
        if cfg.d_steps < 1:
            raise GantrainError(f"model.d_steps must be >= 1, got {cfg.d_steps}")
        super().__init__(cfg, info)
        if cfg.netD in OFFICIAL_CRITICS:
            self._build_official_critics(cfg, info.image_size)
        else:
            self.build_patch_nets(cfg)

    def _build_official_critics(self, cfg, image_size: int) -> None:
        """`build_patch_nets` with the official code's critic (nets/dualgan.py) in place of a PatchGAN."""
        ca, cb = self.channels_A, self.channels_B
        self.nets["G_A"] = build_generator(cfg.netG, ca, cb, cfg.ngf, cfg.norm, cfg.dropout)
        self.nets["G_B"] = build_generator(cfg.netG, cb, ca, cfg.ngf, cfg.norm, cfg.dropout)
        self.nets["D_A"] = DualGANCritic(cfg.netD, cb, cfg.ndf, cfg.norm, image_size)
        self.nets["D_B"] = DualGANCritic(cfg.netD, ca, cfg.ndf, cfg.norm, image_size)
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain)

    def size_multiple(self, direction: str) -> int:
        return size_multiple(self.nets["G_A"])

    def _recon(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(x.float(), y) if self.cfg.recon == "l1" else F.mse_loss(x.float(), y)

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        cfg, n, rt = self.cfg, self.nets, self.rt
        real_A, real_B = batch["A"], batch["B"]
        with rt.autocast():
            fake_B, fake_A = n["G_A"](real_A), n["G_B"](real_B)
            loss_D_A = sum(self.loss.d_pair(n["D_A"](real_B), n["D_A"](fake_B.detach())))
            loss_D_B = sum(self.loss.d_pair(n["D_B"](real_A), n["D_B"](fake_A.detach())))
            if self.loss.kind == "wgan-gp":
                loss_D_A = loss_D_A + cfg.gp_weight * self.gradient_penalty(n["D_A"], real_B, fake_B)
                loss_D_B = loss_D_B + cfg.gp_weight * self.gradient_penalty(n["D_B"], real_A, fake_A)
        self.update("D", loss_D_A + loss_D_B)
        if self.loss.kind == "wgan":
            clip_weights_(n["D_A"], n["D_B"], value=cfg.clip_value)
        out = {"D_A": loss_D_A.detach(), "D_B": loss_D_B.detach()}
        if (step + 1) % cfg.d_steps == 0:
            with self.frozen(n["D_A"], n["D_B"]):
                with rt.autocast():
                    rec_A, rec_B = n["G_B"](fake_B), n["G_A"](fake_A)
                    loss_G_A = self.loss.generator(n["D_A"](fake_B))
                    loss_G_B = self.loss.generator(n["D_B"](fake_A))
                    recon_A = self._recon(rec_A, real_A) * cfg.lambda_A
                    recon_B = self._recon(rec_B, real_B) * cfg.lambda_B
                    loss_G = loss_G_A + loss_G_B + recon_A + recon_B
                self.update("G", loss_G)
            out.update(G_A=loss_G_A.detach(), G_B=loss_G_B.detach(), recon_A=recon_A.detach(), recon_B=recon_B.detach())
        return out

