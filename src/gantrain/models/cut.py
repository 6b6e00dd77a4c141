"""`model=cut` and `model=fastcut`: Contrastive Unpaired Translation (Park, Efros, Zhang, Zhu, ECCV 2020).

One generator G_A: A -> B (the shared ResNet generator) and one 70x70 PatchGAN D_A judging fake_B against
real B, LSGAN. Instead of a cycle, PatchNCE ties each output patch to the input patch at the same place:
G_A's encoder is run on the input and on the output, `num_patches` positions per tapped layer
(`nce_layers`) are projected by that layer's MLP head and each output patch must pick out its own input patch
among the other patches of the same image (temperature `nce_T`). CUT adds the identity NCE on target-domain
images (G_A(B) against B) and averages the two terms; FastCUT drops it, weighs NCE 10 and trains on randomly
h-flipped batches with the query features flipped back (flip equivariance). One module serves both: the two
YAMLs differ only in these keys.

Per batch, as the official code: one G forward (on [A; B] with identity NCE), one D step on real B vs the
detached fake (halved, no image pool), then one step of G and the heads on GAN + NCE with D frozen. Keys take
no gradient in PatchNCE, so their features are computed without a graph; with a per-sample norm the two
query (and key) encodings run as one batched call. Both are the same numbers, fewer passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
import torch.nn as nn
from omegaconf import MISSING

from gantrain.data.base import DataInfo
from gantrain.errors import GantrainError
from gantrain.models.translation import GRID_IMAGES, TranslationModel
from gantrain.nets.generators import build_generator, size_multiple
from gantrain.nets.init import init_weights
from gantrain.nets.patchgan import build_patch_discriminator
from gantrain.nets.patchnce import PatchSampleMLP, patch_nce_loss
from gantrain.nets.resnet import ResnetGenerator


class CUT(TranslationModel):
    generator_names = ("G_A",)
    directions = ("AtoB",)

    @dataclass
    class Config:
        name: str = MISSING
        netG: str = MISSING  # a ResNet generator (its encoder layers are tapped): resnet_<N>blocks
        netD: str = MISSING  # basic (70x70 PatchGAN) | n_layers | pixel
        n_layers_D: int = MISSING
        ngf: int = MISSING
        ndf: int = MISSING
        norm: str = MISSING
        dropout: bool = MISSING
        init_type: str = MISSING  # the official CUT default (CycleGAN uses normal)
        init_gain: float = MISSING
        loss: str = MISSING  # lsgan | vanilla | hinge
        lambda_GAN: float = MISSING
        lambda_NCE: float = MISSING  # FastCUT: 10
        nce_idt: bool = MISSING  # identity NCE on B (CUT); FastCUT: false
        nce_layers: List[int] = MISSING  # indices into G's `model` Sequential
        netF_nc: int = MISSING  # units of each 2-layer MLP head
        nce_T: float = MISSING
        num_patches: int = MISSING  # per layer and image (0: every position)
        nce_includes_all_negatives_from_minibatch: bool = MISSING  # negatives from the whole batch, not the image
        flip_equivariance: bool = MISSING  # FastCUT: true
        batch_forwards: bool = MISSING  # batched encoder / D calls (exact for per-sample norms)

    def __init__(self, cfg, info: DataInfo) -> None:
        super().__init__(cfg, info)
        ca, cb = self.channels_A, self.channels_B
        if ca != cb:
            raise GantrainError(f"model={cfg.name} encodes its output with its own encoder, so A and B need equal channel "
                                f"counts (A {ca}, B {cb}); convert one domain (data.channels) or use cyclegan")
        if self.loss.is_wasserstein:
            raise GantrainError(f"model={cfg.name} trains with lsgan, vanilla or hinge, not model.loss={cfg.loss}")
        G = build_generator(cfg.netG, ca, cb, cfg.ngf, cfg.norm, cfg.dropout)
        if not isinstance(G, ResnetGenerator):
            raise GantrainError(f"model={cfg.name} taps a ResNet generator's encoder: use model.netG=resnet_9blocks "
                                f"(or resnet_<N>blocks), not {cfg.netG}")
        self.layers = [int(i) for i in cfg.nce_layers]
        encoder_end = next(i for i, m in enumerate(G.model) if isinstance(m, nn.ConvTranspose2d)) - 1
        if self.layers and max(self.layers) > encoder_end:
            raise GantrainError(f"model.nce_layers {self.layers} reach into the decoder of {cfg.netG} (its encoder ends at "
                                f"layer {encoder_end}); pick indices up to {encoder_end}")
        with torch.no_grad():  # the heads' input widths, from a dry forward of a dummy image
            channels = [f.shape[1] for f in G.encode(torch.zeros(1, ca, 16, 16), self.layers)]
        self.nets["G_A"] = G
        self.nets["D_A"] = build_patch_discriminator(cfg.netD, cb, cfg.ndf, cfg.n_layers_D, cfg.norm)
        self.nets["F"] = PatchSampleMLP(channels, cfg.netF_nc)
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain)
        self.batched = cfg.batch_forwards and cfg.norm != "batch"

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """G with the MLP heads, and D. The official code gives the heads their own Adam with G's settings and
        steps it on the same loss; Adam is per-parameter, so one optimiser over both is the same update."""
        return {"G": [*self.nets["G_A"].parameters(), *self.nets["F"].parameters()], "D": list(self.nets["D_A"].parameters())}

    # ------------------------------------------------------------------ one direction only
    def check_direction(self, direction: str) -> None:
        if direction != "AtoB":
            raise GantrainError(f"model={self.cfg.name} is one-directional (A -> B, no B -> A generator); "
                                f"use --direction AtoB, or train model=cyclegan for both directions")

    def size_multiple(self, direction: str) -> int:
        self.check_direction(direction)
        return size_multiple(self.nets["G_A"])

    @torch.no_grad()
    def sample_grids(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> dict[str, torch.Tensor]:
        a, b = inputs["A"].to(self.rt.device), inputs["B"].to(self.rt.device)
        return {"real_A": a, "fake_B": self.translate(a, "AtoB", nets), "real_B": b, "idt_B": self.translate(b, "AtoB", nets)}

    def grid_rows(self) -> int | None:
        return GRID_IMAGES

    # ------------------------------------------------------------------ training
    def _encode(self, *xs: torch.Tensor) -> list[list[torch.Tensor]]:
        """G_A's tapped features for each input (one batched call when the norm is per-sample)."""
        G = self.nets["G_A"]
        if self.batched and len(xs) > 1:
            feats = G.encode(torch.cat(xs), self.layers)
            return [list(parts) for parts in zip(*(f.chunk(len(xs)) for f in feats))]
        return [G.encode(x, self.layers) for x in xs]

    def _nce(self, q_feats: list[torch.Tensor], k_feats: list[torch.Tensor], flipped: bool) -> torch.Tensor:
        """lambda_NCE x PatchNCE averaged over the tapped layers, for one (output, input) pair of batches."""
        cfg, F = self.cfg, self.nets["F"]
        if flipped:  # the output came from a flipped input: flip its features back onto the input's positions
            q_feats = [torch.flip(f, [3]) for f in q_feats]
        with torch.no_grad():
            k_proj, ids = F(k_feats, cfg.num_patches)
        q_proj, _ = F(q_feats, cfg.num_patches, ids)
        batch = q_feats[0].shape[0]
        total = sum(patch_nce_loss(q.float(), k.float(), batch, cfg.nce_T, cfg.nce_includes_all_negatives_from_minibatch).mean()
                    for q, k in zip(q_proj, k_proj))
        return total * cfg.lambda_NCE / len(self.layers)

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        cfg, n, rt = self.cfg, self.nets, self.rt
        real_A, real_B = batch["A"], batch["B"]
        idt = cfg.nce_idt and cfg.lambda_NCE > 0
        real = torch.cat([real_A, real_B]) if idt else real_A
        flipped = cfg.flip_equivariance and bool(torch.rand(()) < 0.5)
        if flipped:
            real = torch.flip(real, [3])
        with rt.autocast():
            fake = n["G_A"](real)
        fake_B = fake[: real_A.shape[0]]
        # D step on the fake made before this G step (no image pool)
        with rt.autocast():
            if self.batched:
                d_real, d_fake = n["D_A"](torch.cat([real_B, fake_B.detach()])).chunk(2)
            else:
                d_real, d_fake = n["D_A"](real_B), n["D_A"](fake_B.detach())
            loss_D = 0.5 * (self.loss.discriminator(d_real, True) + self.loss.discriminator(d_fake, False))
        self.update("D", loss_D)
        with self.frozen(n["D_A"]):  # G and the heads step with D frozen
            out: dict[str, torch.Tensor] = {"D": loss_D}
            with rt.autocast():
                loss_G_GAN = self.loss.generator(n["D_A"](fake_B)) * cfg.lambda_GAN
                loss_G = loss_G_GAN
                if cfg.lambda_NCE > 0:
                    if idt:
                        idt_B = fake[real_A.shape[0]:]
                        q_x, q_y = self._encode(fake_B, idt_B)
                        with torch.no_grad():
                            k_x, k_y = self._encode(real_A, real_B)
                        nce_x, nce_y = self._nce(q_x, k_x, flipped), self._nce(q_y, k_y, flipped)
                        loss_G = loss_G + 0.5 * (nce_x + nce_y)
                        out["NCE_Y"] = nce_y
                    else:
                        (q_x,) = self._encode(fake_B)
                        with torch.no_grad():
                            (k_x,) = self._encode(real_A)
                        nce_x = self._nce(q_x, k_x, flipped)
                        loss_G = loss_G + nce_x
                    out["NCE"] = nce_x
            self.update("G", loss_G)
        out["G_GAN"] = loss_G_GAN
        return {k: v.detach() for k, v in out.items()}
