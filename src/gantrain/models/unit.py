"""`model=unit`: UNIT (Liu, Breuel, Kautz 2017), the shared-latent VAE-GAN of the paper.

E_A, E_B encode each domain; their last residual block (`E_shared`) is shared, as is the first block of the
decoders (`G_shared`); G_A decodes into domain A, G_B into B. The latent is q(z|x) = N(mu(x), I), so the KL
term is mean(mu^2). D_A judges A-domain images, D_B B-domain ones (by default the official code's 3-scale D,
BCE summed over the scales). Per batch:
  VAE:   lambda_1 KL(mu_a) + lambda_2 |G_A(z_a) - a|_1            (and for B)
  GAN:   lambda_0 GAN(D_B(G_B(z_a)))                               (and for A)
  cycle: lambda_3 KL(mu(E_B(a->b))) + lambda_4 |G_A(z(a->b)) - a|_1 (and for B)
with lambda_0 = 10, lambda_1 = lambda_3 = 0.1, lambda_2 = lambda_4 = 100; Adam 1e-4 (0.5, 0.999), weight
decay 1e-4, batch 1, 500k iterations (configs/recipe/unit.yaml). Translation uses the latent mean (no sampling noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import MISSING

from gantrain.data.base import DataInfo
from gantrain.errors import GantrainError
from gantrain.models.translation import TranslationModel
from gantrain.nets.init import init_weights
from gantrain.nets.multiscale import DOWNSAMPLES, MultiScaleDiscriminator
from gantrain.nets.patchgan import build_patch_discriminator
from gantrain.nets.unit import unit_decoder, unit_discriminator, unit_encoder, unit_res_block


class UNIT(TranslationModel):
    generator_names = ("E_A", "E_B", "E_shared", "G_shared", "G_A", "G_B")

    @dataclass
    class Config:
        name: str = MISSING
        arch: str = MISSING  # official (the paper-version code's nets) | gantrain (the earlier nets)
        ngf: int = MISSING
        ndf: int = MISSING
        n_res: int = MISSING  # residual blocks per encoder/decoder, besides the shared one
        norm: str = MISSING  # arch=official: inside the residual blocks only
        dropout: bool = MISSING  # the paper code's residual-block dropout 0.5
        netD: str = MISSING  # unit (the official conv D) | basic | n_layers | pixel (PatchGAN)
        n_layers_D: int = MISSING
        norm_D: str = MISSING  # PatchGAN Ds only; netD=unit has none
        n_scales_D: int = MISSING  # 1: one D at full resolution
        downsample_D: str = MISSING  # gaussian (the official blur + subsample) | avgpool
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
        width, arch = cfg.ngf * 4, cfg.arch
        self.nets["E_A"] = unit_encoder(ca, cfg.ngf, cfg.n_res, cfg.norm, cfg.dropout, arch)
        self.nets["E_B"] = unit_encoder(cb, cfg.ngf, cfg.n_res, cfg.norm, cfg.dropout, arch)
        self.nets["E_shared"] = unit_res_block(width, cfg.norm, cfg.dropout, arch)
        self.nets["G_shared"] = unit_res_block(width, cfg.norm, cfg.dropout, arch)
        self.nets["G_A"] = unit_decoder(ca, cfg.ngf, cfg.n_res, cfg.norm, cfg.dropout, arch)
        self.nets["G_B"] = unit_decoder(cb, cfg.ngf, cfg.n_res, cfg.norm, cfg.dropout, arch)
        self.nets["D_A"] = self.build_discriminator(cfg, ca)
        self.nets["D_B"] = self.build_discriminator(cfg, cb)
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain)

    @staticmethod
    def build_discriminator(cfg, channels: int) -> nn.Module:
        """One D design (`netD`) at `n_scales_D` scales; a single scale is the plain net (its earlier checkpoints load)."""
        if cfg.netD == "unit" and cfg.norm_D != "none":
            raise GantrainError(f"netD=unit (the official D) has no norm, got model.norm_D={cfg.norm_D}: set model.norm_D=none "
                                "or pick a PatchGAN netD (basic, n_layers, pixel)")
        if cfg.downsample_D not in DOWNSAMPLES:
            raise GantrainError(f"unknown model.downsample_D {cfg.downsample_D!r}; choose one of: {', '.join(DOWNSAMPLES)}")

        def one() -> nn.Module:
            if cfg.netD == "unit":
                return unit_discriminator(channels, cfg.ndf, cfg.n_layers_D)
            return build_patch_discriminator(cfg.netD, channels, cfg.ndf, cfg.n_layers_D, cfg.norm_D)

        return one() if cfg.n_scales_D == 1 else MultiScaleDiscriminator(one, cfg.n_scales_D, cfg.downsample_D)

    def d_losses(self, name: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """D's real + fake loss, summed over its scales (the official loss: not halved, not averaged)."""
        pairs = [sum(self.loss.d_pair(r, f)) for r, f in zip(self.scores(name, real), self.scores(name, fake))]
        return sum(pairs[1:], pairs[0])

    def g_loss(self, name: str, fake: torch.Tensor) -> torch.Tensor:
        terms = [self.loss.generator(s) for s in self.scores(name, fake)]
        return sum(terms[1:], terms[0])

    def scores(self, name: str, x: torch.Tensor) -> list[torch.Tensor]:
        out = self.nets[name](x)
        return out if isinstance(out, list) else [out]

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
                gan_A, gan_B = self.g_loss("D_A", fake_A), self.g_loss("D_B", fake_B)
                loss_G = (cfg.lambda_gan * (gan_A + gan_B) + cfg.lambda_kl * (kl_A + kl_B)
                          + cfg.lambda_recon * (recon_A + recon_B) + cfg.lambda_cycle_kl * (kl_cyc_A + kl_cyc_B)
                          + cfg.lambda_cycle * (cycle_A + cycle_B))
            self.update("G", loss_G)
        with rt.autocast():
            loss_D_A = self.d_losses("D_A", real_A, fake_A.detach())
            loss_D_B = self.d_losses("D_B", real_B, fake_B.detach())
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
