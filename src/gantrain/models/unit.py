"""`model=unit`: UNIT (Liu, Breuel, Kautz 2017), the shared-latent VAE-GAN of the paper.

E_A, E_B encode each domain; their last residual block (`E_shared`) is shared, as is the first block of the
decoders (`G_shared`); G_A decodes into domain A, G_B into B. The latent is q(z|x) = N(mu(x), I), so the KL
term is mean(mu^2). D_A judges A-domain images, D_B B-domain ones (PatchGAN, BCE). Per batch:
  VAE:   lambda_1 KL(mu_a) + lambda_2 |G_A(z_a) - a|_1            (and for B)
  GAN:   lambda_0 GAN(D_B(G_B(z_a)))                               (and for A)
  cycle: lambda_3 KL(mu(E_B(a->b))) + lambda_4 |G_A(z(a->b)) - a|_1 (and for B)
with lambda_0 = 10, lambda_1 = lambda_3 = 0.1, lambda_2 = lambda_4 = 100; Adam 1e-4 (0.5, 0.999), weight
decay 1e-4 (configs/recipe/unit.yaml). Translation uses the latent mean (no sampling noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import MISSING

from gantrain.data.base import DataInfo
from gantrain.models.translation import TranslationModel
from gantrain.nets.init import init_weights
from gantrain.nets.patchgan import build_patch_discriminator
from gantrain.nets.resnet import ResnetBlock
from gantrain.nets.unit import unit_decoder, unit_encoder


class UNIT(TranslationModel):
    generator_names = ("E_A", "E_B", "E_shared", "G_shared", "G_A", "G_B")

    @dataclass
    class Config:
        name: str = MISSING
        ngf: int = MISSING
        ndf: int = MISSING
        n_res: int = MISSING  # residual blocks per encoder/decoder, besides the shared one
        norm: str = MISSING
        dropout: bool = MISSING  # the paper code's residual-block dropout 0.5
        netD: str = MISSING
        n_layers_D: int = MISSING
        norm_D: str = MISSING
        init_type: str = MISSING
        init_gain: float = MISSING
        loss: str = MISSING
        lambda_gan: float = MISSING  # lambda_0
        lambda_kl: float = MISSING  # lambda_1
        lambda_recon: float = MISSING  # lambda_2
        lambda_cycle_kl: float = MISSING  # lambda_3
        lambda_cycle: float = MISSING  # lambda_4

    def __init__(self, cfg, info: DataInfo) -> None:
        super().__init__(cfg, info)
        ca, cb = self.channels_A, self.channels_B
        width = cfg.ngf * 4
        self.nets["E_A"] = unit_encoder(ca, cfg.ngf, cfg.n_res, cfg.norm, cfg.dropout)
        self.nets["E_B"] = unit_encoder(cb, cfg.ngf, cfg.n_res, cfg.norm, cfg.dropout)
        self.nets["E_shared"] = ResnetBlock(width, cfg.norm, cfg.dropout)
        self.nets["G_shared"] = ResnetBlock(width, cfg.norm, cfg.dropout)
        self.nets["G_A"] = unit_decoder(ca, cfg.ngf, cfg.n_res, cfg.norm, cfg.dropout)
        self.nets["G_B"] = unit_decoder(cb, cfg.ngf, cfg.n_res, cfg.norm, cfg.dropout)
        self.nets["D_A"] = build_patch_discriminator(cfg.netD, ca, cfg.ndf, cfg.n_layers_D, cfg.norm_D)
        self.nets["D_B"] = build_patch_discriminator(cfg.netD, cb, cfg.ndf, cfg.n_layers_D, cfg.norm_D)
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain)

    def size_multiple(self, direction: str) -> int:
        return 4

    def encode(self, x: torch.Tensor, side: str, nets: nn.ModuleDict | None = None) -> torch.Tensor:
        n = nets or self.nets
        return n["E_shared"](n[f"E_{side}"](x))

    def decode(self, z: torch.Tensor, side: str, nets: nn.ModuleDict | None = None) -> torch.Tensor:
        n = nets or self.nets
        return n[f"G_{side}"](n["G_shared"](z))

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        cfg, n, rt = self.cfg, self.nets, self.rt
        real_A, real_B = batch["A"], batch["B"]
        with self.frozen(n["D_A"], n["D_B"]):
            with rt.autocast():
                mu_a, mu_b = self.encode(real_A, "A"), self.encode(real_B, "B")
                z_a, z_b = mu_a + torch.randn_like(mu_a), mu_b + torch.randn_like(mu_b)
                rec_A, rec_B = self.decode(z_a, "A"), self.decode(z_b, "B")
                fake_B, fake_A = self.decode(z_a, "B"), self.decode(z_b, "A")
                mu_ab, mu_ba = self.encode(fake_B, "B"), self.encode(fake_A, "A")
                cyc_A = self.decode(mu_ab + torch.randn_like(mu_ab), "A")
                cyc_B = self.decode(mu_ba + torch.randn_like(mu_ba), "B")
                kl_A, kl_B = mu_a.float().pow(2).mean(), mu_b.float().pow(2).mean()
                kl_cyc_A, kl_cyc_B = mu_ab.float().pow(2).mean(), mu_ba.float().pow(2).mean()
                recon_A, recon_B = F.l1_loss(rec_A.float(), real_A), F.l1_loss(rec_B.float(), real_B)
                cycle_A, cycle_B = F.l1_loss(cyc_A.float(), real_A), F.l1_loss(cyc_B.float(), real_B)
                gan_A = self.loss.generator(n["D_A"](fake_A))
                gan_B = self.loss.generator(n["D_B"](fake_B))
                loss_G = (cfg.lambda_gan * (gan_A + gan_B) + cfg.lambda_kl * (kl_A + kl_B)
                          + cfg.lambda_recon * (recon_A + recon_B) + cfg.lambda_cycle_kl * (kl_cyc_A + kl_cyc_B)
                          + cfg.lambda_cycle * (cycle_A + cycle_B))
            self.update("G", loss_G)
        with rt.autocast():
            loss_D_A = sum(self.loss.d_pair(n["D_A"](real_A), n["D_A"](fake_A.detach())))
            loss_D_B = sum(self.loss.d_pair(n["D_B"](real_B), n["D_B"](fake_B.detach())))
            loss_D = cfg.lambda_gan * (loss_D_A + loss_D_B)
        self.update("D", loss_D)
        out = {"D_A": loss_D_A, "D_B": loss_D_B, "G_A": gan_A, "G_B": gan_B, "recon_A": recon_A, "recon_B": recon_B,
               "cycle_A": cycle_A, "cycle_B": cycle_B, "kl_A": kl_A, "kl_B": kl_B}
        return {k: v.detach() for k, v in out.items()}

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str, nets: nn.ModuleDict | None = None) -> torch.Tensor:
        self.check_direction(direction)
        src, dst = ("A", "B") if direction == "AtoB" else ("B", "A")
        with self.rt.autocast():
            return self.decode(self.encode(x, src, nets), dst, nets).float()
