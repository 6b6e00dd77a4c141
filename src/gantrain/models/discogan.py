"""`model=discogan`: DiscoGAN (Kim et al. 2017).

G_A: A -> B and G_B: B -> A are encoder-decoders without skips (default `bottleneck: 0`: the 4x4 map after the
last stride-2 conv is the code, the official code's default `Generator(extra_layers=False)`; `bottleneck: 100`
adds its optional 1x1x100 code, `extra_layers=True`); D_A judges B-domain images, D_B A-domain ones (DCGAN-style
conv discriminators). Paper loss: standard GAN (BCE) + MSE reconstruction for each direction; D's loss is halved
as the official code halves it (`d_loss_weight`). Adam 2e-4 with weight decay 1e-5, batch 64 at 64 px
(configs/recipe/discogan.yaml).

`official_mix: true` turns on the official code's extras: per direction (0.1 GAN + 0.9 feature matching) x
(1 - r) + reconstruction x r, with r = 0.01 for the first `curriculum_iters` iterations, then 0.5, feature
matching summed over D's layers (`fm_reduction`); `d_every: 3` reproduces its "D when iter % 3 == 0, G
otherwise" schedule. That is an alternation, not a critic count: the `d_steps` of other families gives D k
updates per G update, `d_every` k gives G k - 1 updates per D update.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import MISSING

from gantrain.data.base import DataInfo, DataSource
from gantrain.errors import GantrainError
from gantrain.models.translation import TranslationModel
from gantrain.nets.dcgan import DCGANDiscriminator
from gantrain.nets.encoder_decoder import EncoderDecoderGenerator
from gantrain.nets.init import init_weights


def _features(D: DCGANDiscriminator, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """D's logits and its LeakyReLU activations after the first layer (relu2, relu3, ... in the official code)."""
    feats = []
    h = x
    for i, layer in enumerate(D.trunk):
        h = layer(h)
        if isinstance(layer, nn.LeakyReLU) and i > 1:
            feats.append(h)
    return D.head(h).flatten(), feats


def feature_matching(real: list[torch.Tensor], fake: list[torch.Tensor], reduction: str = "sum") -> torch.Tensor:
    """Per layer, the mean squared difference of batch-mean features; summed over layers or averaged.

    The official code feeds the squared differences to a hinge-embedding loss with target 1, which is their mean.
    """
    terms = torch.stack([(r.float().mean(0) - f.float().mean(0)).pow(2).mean() for r, f in zip(real, fake)])
    return terms.sum() if reduction == "sum" else terms.mean()


class DiscoGAN(TranslationModel):

    @dataclass
    class Config:
        name: str = MISSING
        ngf: int = MISSING
        ndf: int = MISSING
        bottleneck: int = MISSING  # width of the 1x1 code; 0: none, the code_size map is the code (official default)
        code_size: int = MISSING  # side of the encoder's last feature map (4: the official code)
        norm: str = MISSING
        init_type: str = MISSING
        init_gain: float = MISSING
        loss: str = MISSING  # bce (the paper's standard GAN) | lsgan | hinge
        recon: str = MISSING  # mse | l1
        lambda_recon: float = MISSING  # paper: GAN + reconstruction, equal weights
        d_loss_weight: float = MISSING  # official: 0.5 (BCE real + BCE fake) per D; 1.0 the paper's plain sum
        official_mix: bool = MISSING  # the official code's GAN/feature-matching mix and reconstruction curriculum
        gan_weight: float = MISSING
        fm_weight: float = MISSING
        fm_reduction: str = MISSING  # feature matching over D's layers: sum (official) | mean
        recon_rate_start: float = MISSING
        recon_rate: float = MISSING
        curriculum_iters: int = MISSING
        d_every: int = MISSING  # D/G alternation (not a critic count); official code: 3 (D on iterations divisible by 3, G on the others)

    def __init__(self, cfg, info: DataInfo) -> None:
        if cfg.recon not in ("mse", "l1"):
            raise GantrainError(f"model.recon={cfg.recon} is not valid; choose mse or l1")
        if cfg.fm_reduction not in ("sum", "mean"):
            raise GantrainError(f"model.fm_reduction={cfg.fm_reduction} is not valid; choose sum or mean")
        if cfg.d_loss_weight <= 0:
            raise GantrainError(f"model.d_loss_weight={cfg.d_loss_weight} is not valid; use a value > 0 (official 0.5)")
        super().__init__(cfg, info)
        ca, cb, size = self.channels_A, self.channels_B, info.image_size
        self.nets["G_A"] = EncoderDecoderGenerator(ca, cb, size, cfg.ngf, cfg.bottleneck, cfg.norm, cfg.code_size)
        self.nets["G_B"] = EncoderDecoderGenerator(cb, ca, size, cfg.ngf, cfg.bottleneck, cfg.norm, cfg.code_size)
        self.nets["D_A"] = DCGANDiscriminator(cb, size, cfg.ndf, cfg.norm)
        self.nets["D_B"] = DCGANDiscriminator(ca, size, cfg.ndf, cfg.norm)
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain)

    def prepare(self, data: DataSource, run_dir: Path | None = None) -> None:
        """Refuse batch 1 where batch norm would normalise the single value of each 1x1 code channel."""
        if self.cfg.norm == "batch" and self.cfg.bottleneck > 0 and data.cfg.batch_size < 2:
            raise GantrainError(
                "model=discogan with batch norm and a 1x1 code needs data.batch_size of at least 2 (the paper uses 64); "
                "raise data.batch_size, or set model.norm=instance or model.bottleneck=0"
            )
        super().prepare(data, run_dir)

    def size_multiple(self, direction: str) -> int:
        return self.info.image_size

    def _recon(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(x.float(), y) if self.cfg.recon == "mse" else F.l1_loss(x.float(), y)

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        cfg, n, rt = self.cfg, self.nets, self.rt
        real_A, real_B = batch["A"], batch["B"]
        d_turn = cfg.d_every <= 1 or step % cfg.d_every == 0
        g_turn = cfg.d_every <= 1 or not d_turn
        out: dict[str, torch.Tensor] = {}
        with rt.autocast():
            fake_B, fake_A = n["G_A"](real_A), n["G_B"](real_B)
        if g_turn:
            with self.frozen(n["D_A"], n["D_B"]):
                with rt.autocast():
                    rec_A, rec_B = n["G_B"](fake_B), n["G_A"](fake_A)
                    logit_fB, feat_fB = _features(n["D_A"], fake_B)
                    logit_fA, feat_fA = _features(n["D_B"], fake_A)
                    gan_B, gan_A = self.loss.generator(logit_fB), self.loss.generator(logit_fA)
                    recon_A, recon_B = self._recon(rec_A, real_A), self._recon(rec_B, real_B)
                    if cfg.official_mix:
                        with torch.no_grad():
                            _, feat_rB = _features(n["D_A"], real_B)
                            _, feat_rA = _features(n["D_B"], real_A)
                        fm_B = feature_matching(feat_rB, feat_fB, cfg.fm_reduction)
                        fm_A = feature_matching(feat_rA, feat_fA, cfg.fm_reduction)
                        r = cfg.recon_rate_start if step < cfg.curriculum_iters else cfg.recon_rate
                        total_A = (cfg.gan_weight * gan_B + cfg.fm_weight * fm_B) * (1 - r) + recon_A * r
                        total_B = (cfg.gan_weight * gan_A + cfg.fm_weight * fm_A) * (1 - r) + recon_B * r
                        out.update(fm_A=fm_B.detach(), fm_B=fm_A.detach())
                    else:
                        total_A = gan_B + cfg.lambda_recon * recon_A
                        total_B = gan_A + cfg.lambda_recon * recon_B
                self.update("G", total_A + total_B)
            out.update(G_A=gan_B.detach(), G_B=gan_A.detach(), recon_A=recon_A.detach(), recon_B=recon_B.detach())
        if d_turn:
            with rt.autocast():
                loss_D_A = cfg.d_loss_weight * sum(self.loss.d_pair(n["D_A"](real_B), n["D_A"](fake_B.detach())))
                loss_D_B = cfg.d_loss_weight * sum(self.loss.d_pair(n["D_B"](real_A), n["D_B"](fake_A.detach())))
            self.update("D", loss_D_A + loss_D_B)
            out.update(D_A=loss_D_A.detach(), D_B=loss_D_B.detach())
        return out

