"""`model=acgan`: auxiliary classifier GAN (Odena, Olah & Shlens 2017) on DCGAN nets.

D has a shared trunk with two heads: real/fake (one logit) and class (K raw logits). D minimises the
adversarial loss plus `class_weight` x cross-entropy on real images (true labels) and on fakes (the labels
they were generated from; `fake_class_loss=false` drops that term, a known fix for AC-GAN's low diversity).
G minimises its adversarial loss plus `class_weight` x cross-entropy of D's class head on its fakes.
Class logits go straight into `F.cross_entropy` (no softmax in front: the double-softmax bug of
several reimplementations).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from gantrain.data.base import DataInfo
from gantrain.losses import clip_weights_
from gantrain.models.conditional import ConditionalConfig, ConditionalGANModel
from gantrain.nets.conditional import AuxClassifierDiscriminator, ConditionalGenerator
from gantrain.nets.init import init_weights


class ACGAN(ConditionalGANModel):
    @dataclass
    class Config(ConditionalConfig):
        name: str = MISSING
        class_weight: float = MISSING  # weight of the class cross-entropy terms
        fake_class_loss: bool = MISSING  # D's class loss on fakes (paper); false: real images only

    def __init__(self, cfg, info: DataInfo) -> None:
        super().__init__(cfg, info)
        k = info.num_classes
        self.nets["G"] = ConditionalGenerator(
            cfg.z_dim, k, info.channels, info.image_size, cfg.ngf, cfg.norm_G, cfg.g_conditioning, cfg.embed_dim
        )
        self.nets["D"] = AuxClassifierDiscriminator(info.channels, k, info.image_size, cfg.ndf, cfg.norm_D)
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain)

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        G, D, rt, w = self.nets["G"], self.nets["D"], self.rt, self.cfg.class_weight
        real, y_real = batch["image"], batch["label"]
        n = real.shape[0]
        z, y_fake = self.sample_z(n), self.sample_labels(n)
        with rt.autocast():
            fake = G(z, y_fake)
            adv_real, cls_real = D(self.augment(real))
            adv_fake, cls_fake = D(self.augment(fake.detach()))
            d_real, d_fake = self.loss.d_pair(adv_real, adv_fake)
            ce_real = F.cross_entropy(cls_real.float(), y_real)
            ce_fake = F.cross_entropy(cls_fake.float(), y_fake)
            d_class = ce_real + ce_fake if self.cfg.fake_class_loss else ce_real
            loss_D = d_real + d_fake + w * d_class
            if self.loss.kind == "wgan-gp":
                loss_D = loss_D + self.cfg.gp_weight * self.gradient_penalty(lambda x: D(self.augment(x))[0], real, fake)
        self.update("D", loss_D)
        if self.loss.kind == "wgan":
            clip_weights_(D, value=self.cfg.clip_value)
        out = {
            "D": loss_D.detach(), "D_real": d_real.detach(), "D_fake": d_fake.detach(),
            "D_class_real": ce_real.detach(), "D_class_fake": ce_fake.detach(),
            "acc/D_class_real": self.accuracy(cls_real, y_real), "acc/D_class_fake": self.accuracy(cls_fake, y_fake),
        }
        if (step + 1) % self.cfg.d_steps == 0:
            with self.frozen(D):
                with rt.autocast():
                    adv_g, cls_g = D(self.augment(fake))
                    g_adv = self.loss.generator(adv_g)
                    g_class = F.cross_entropy(cls_g.float(), y_fake)
                    loss_G = g_adv + w * g_class
                self.update("G", loss_G)
            out.update({"G": loss_G.detach(), "G_adv": g_adv.detach(), "G_class": g_class.detach()})
        return out
