"""`model=cgan`: conditional GAN (Mirza & Osindero 2014) on DCGAN nets: both G(z | y) and D(x | y) see the label.

G conditions by label embedding concatenated with z (paper), z times an embedding, or conditional batch norm;
D by label planes concatenated with the image (paper) or the projection discriminator (Miyato & Koyama 2018).
Any adversarial loss of `gantrain.losses`. Fakes get labels drawn by `label_sampling` and are judged by D
against those labels, so a G that ignores y is caught.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import MISSING

from gantrain.data.base import DataInfo
from gantrain.losses import clip_weights_
from gantrain.models.conditional import ConditionalConfig, ConditionalGANModel
from gantrain.nets.conditional import ConditionalDiscriminator, ConditionalGenerator
from gantrain.nets.init import init_weights


class CGAN(ConditionalGANModel):
    @dataclass
    class Config(ConditionalConfig):
        name: str = MISSING
        d_conditioning: str = MISSING  # concat (paper) | projection

    def __init__(self, cfg, info: DataInfo) -> None:
        super().__init__(cfg, info)
        k = info.num_classes
        self.nets["G"] = ConditionalGenerator(
            cfg.z_dim, k, info.channels, info.image_size, cfg.ngf, cfg.norm_G, cfg.g_conditioning, cfg.embed_dim
        )
        self.nets["D"] = ConditionalDiscriminator(
            info.channels, k, info.image_size, cfg.ndf, cfg.norm_D, cfg.d_conditioning, cfg.embed_dim
        )
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain)

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
