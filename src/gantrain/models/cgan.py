"""`model=cgan`: conditional GAN (Mirza & Osindero 2014): both G(z | y) and D(x | y) see the label.

`arch: paper` is the paper's MNIST MLPs (G: z and one-hot y through their own ReLU layers, joined; D: maxout
branches for x and y, joined by a maxout layer; dropout in both). `arch: dcgan` is the DCGAN-style conditional nets,
where G conditions by label embedding concatenated with z (paper), z times an embedding, or conditional batch norm;
D by label planes concatenated with the image (paper) or the projection discriminator (Miyato & Koyama 2018).
Any adversarial loss of `gantrain.losses`. Fakes get labels drawn by `label_sampling` and are judged by D
against those labels, so a G that ignores y is caught.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from omegaconf import MISSING

from gantrain.data.base import DataInfo
from gantrain.errors import GantrainError
from gantrain.losses import clip_weights_
from gantrain.models.conditional import ConditionalConfig, ConditionalGANModel
from gantrain.nets.conditional import ConditionalDiscriminator, ConditionalGenerator
from gantrain.nets.init import init_weights
from gantrain.nets.mlp import (EmbeddingConditionalDiscriminator, EmbeddingConditionalGenerator,
                               PaperConditionalDiscriminator, PaperConditionalGenerator)


class CGAN(ConditionalGANModel):
    @dataclass
    class Config(ConditionalConfig):
        name: str = MISSING
        d_conditioning: str = MISSING  # concat (paper) | projection (arch=dcgan)
        arch: str = MISSING  # paper (the paper's MNIST MLPs, maxout D) | dcgan (DCGAN-style conditional nets) | mlp
        g_hidden: list[int] = MISSING  # arch=paper: z branch, y branch, joint; arch=mlp: the hidden widths
        d_hidden: list[int] = MISSING  # arch=paper: maxout units x, y, joint; arch=mlp: the hidden widths
        d_pieces: list[int] = MISSING  # arch=paper: maxout pieces x, y, joint
        g_dropout: float = MISSING  # arch=paper
        d_dropout: float = MISSING  # arch=paper, arch=mlp

    def __init__(self, cfg, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.nets["G"], self.nets["D"] = self.build_nets(cfg, info)
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain)

    @staticmethod
    def build_nets(cfg, info: DataInfo) -> tuple[nn.Module, nn.Module]:
        k, shape = info.num_classes, (info.channels, info.image_size, info.image_size)
        if cfg.arch == "dcgan":
            return (
                ConditionalGenerator(cfg.z_dim, k, info.channels, info.image_size, cfg.ngf, cfg.norm_G,
                                     cfg.g_conditioning, cfg.embed_dim),
                ConditionalDiscriminator(info.channels, k, info.image_size, cfg.ndf, cfg.norm_D, cfg.d_conditioning,
                                         cfg.embed_dim),
            )
        if cfg.arch not in ("paper", "mlp"):
            raise GantrainError(f"unknown model.arch {cfg.arch!r}; choose paper (the paper's MLPs), dcgan or mlp")
        if (cfg.g_conditioning, cfg.d_conditioning) != ("concat", "concat"):
            raise GantrainError(
                f"model.arch={cfg.arch} joins the label to both nets' inputs (concat); g_conditioning="
                f"{cfg.g_conditioning} / d_conditioning={cfg.d_conditioning} need model.arch=dcgan"
            )
        if cfg.arch == "mlp":
            return (
                EmbeddingConditionalGenerator(cfg.z_dim, k, shape, cfg.g_hidden, cfg.norm_G, cfg.embed_dim),
                EmbeddingConditionalDiscriminator(shape, k, cfg.d_hidden, cfg.embed_dim, cfg.d_dropout),
            )
        for key, n in (("g_hidden", 3), ("d_hidden", 3), ("d_pieces", 3)):
            if len(getattr(cfg, key)) != n:
                raise GantrainError(f"model.{key} needs {n} entries (z or x branch, y branch, joint), got {list(getattr(cfg, key))}")
        return (
            PaperConditionalGenerator(cfg.z_dim, k, shape, cfg.g_hidden, cfg.g_dropout),
            PaperConditionalDiscriminator(shape, k, cfg.d_hidden, cfg.d_pieces, cfg.d_dropout),
        )

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        G, D, rt = self.nets["G"], self.nets["D"], self.rt
        real, y_real = batch["image"], batch["label"]
        n = real.shape[0]
        z, y_fake = self.sample_z(n), self.sample_labels(n)
        with rt.autocast():
            fake = G(z, y_fake)
            logit_real, classes_real = D.forward_with_classes(self.augment(real), y_real)
            logit_fake, classes_fake = D.forward_with_classes(self.augment(fake.detach()), y_fake)
            d_real, d_fake = self.loss.d_pair(logit_real, logit_fake)
            loss_D = d_real + d_fake
            if self.loss.kind == "wgan-gp":
                # the penalty keeps D(., y) 1-Lipschitz for every y, so the fakes' labels serve on the interpolates
                loss_D = loss_D + self.cfg.gp_weight * self.gradient_penalty(lambda x: D(self.augment(x), y_fake), real, fake)
        self.update("D", loss_D)
        if self.loss.kind == "wgan":
            clip_weights_(D, value=self.cfg.clip_value)
        out = {"D": loss_D.detach(), "D_real": d_real.detach(), "D_fake": d_fake.detach()}
        if classes_real is not None:
            out["acc/D_class_real"] = self.accuracy(classes_real, y_real)
            out["acc/D_class_fake"] = self.accuracy(classes_fake, y_fake)
        if (step + 1) % self.cfg.d_steps == 0:
            with self.frozen(D):
                with rt.autocast():
                    loss_G = self.loss.generator(D(self.augment(fake), y_fake))
                self.update("G", loss_G)
            out["G"] = loss_G.detach()
        return out
