"""`model=pix2pix`: the image-conditioned GAN of Isola et al. (2017) for paired translation.

G maps the input image to the output (U-Net with batch norm; dropout 0.5 in the decoder is its only noise,
no z). D is a PatchGAN on the channel-wise concatenation (input, output) against (input, target). Per batch,
as the reference: G forward; one D step on 0.5 x (GAN(D(A, G(A)) as fake) + GAN(D(A, B) as real)); one G
step on GAN(D(A, G(A)) as real) + lambda_L1 x |G(A) - B|. No image pool. The input side follows
`data.direction` (AtoB: A -> B; BtoA: B -> A).

Inference follows the paper by default (`test_mode: train`): dropout stays on and batch norm uses the test
batch's statistics. The dropout draws come from a fixed seed in a forked RNG, so translations are repeatable
and training's RNG stream is untouched; running statistics are not updated by translating.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import MISSING

from gantrain.data.base import DataInfo
from gantrain.errors import GantrainError
from gantrain.losses import make_loss
from gantrain.models.translation import TranslationModel
from gantrain.nets.generators import build_generator, size_multiple
from gantrain.nets.init import init_weights
from gantrain.nets.patchgan import build_patch_discriminator
from gantrain.rng import isolated_rng
from gantrain.runtime import local_batch_norm

GAN_MODES = {"vanilla": "bce", "lsgan": "lsgan"}  # the reference's --gan_mode names -> gantrain.losses
TEST_SEED = 0


@contextmanager
def paper_inference(net: nn.Module, seed: int) -> Iterator[None]:
    """Run `net` as in training (dropout on, batch statistics) without changing its state or the global RNG."""
    was_training = net.training
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in bns]
    with isolated_rng(seed):  # every CPU and CUDA stream forked: no device is reseeded for training
        net.train()
        for m in bns:
            m.momentum = 0.0  # running = (1 - 0) x running + 0 x batch: unchanged
        try:
            yield
        finally:
            for m, (momentum, tracked) in zip(bns, saved):
                m.momentum = momentum
                if tracked is not None:
                    m.num_batches_tracked.copy_(tracked)
            net.train(was_training)


class Pix2Pix(TranslationModel):
    """One direction, one G and one D, on TranslationModel's grid inputs (the first test pairs, never trained on)."""

    generator_names = ("G",)
    default_metrics = ("paired",)

    @dataclass
    class Config:
        name: str = MISSING
        netG: str = MISSING  # unet_256 | unet_128 (| unet_<2^k>, resnet_9blocks, resnet_6blocks)
        netD: str = MISSING  # basic (70x70 PatchGAN) | n_layers | pixel
        n_layers_D: int = MISSING  # netD=n_layers only
        ngf: int = MISSING
        ndf: int = MISSING
        norm: str = MISSING  # batch | instance | layer | none
        bias_without_norm: bool = MISSING  # norm=none: convs with a bias (true: gantrain before) or none (the reference)
        dropout: bool = MISSING  # Dropout(0.5) in the U-Net decoder: the paper's noise
        init_type: str = MISSING
        init_gain: float = MISSING
        gan_mode: str = MISSING  # vanilla (cross-entropy) | lsgan
        lambda_L1: float = MISSING
        test_mode: str = MISSING  # train: the paper's inference (dropout on, batch stats) | eval: running stats, no dropout

    def __init__(self, cfg, info: DataInfo) -> None:
        super().__init__(cfg, info)
        if cfg.gan_mode not in GAN_MODES:
            raise GantrainError(f"model.gan_mode={cfg.gan_mode} is not valid; choose one of: {', '.join(GAN_MODES)}")
        if cfg.test_mode not in ("train", "eval"):
            raise GantrainError(f"model.test_mode={cfg.test_mode} is not valid; choose train (the paper) or eval")
        if not info.paired:
            raise GantrainError(f"model=pix2pix needs paired data (data=edges2digits, aligned_folder, ...), not data={info.name}")
        self.loss = make_loss(GAN_MODES[cfg.gan_mode])
        self.direction = info.direction
        self.src, self.dst = ("A", "B") if self.direction == "AtoB" else ("B", "A")
        self.directions = (self.direction,)  # the only one `translate` accepts: per-direction metrics score it alone
        c_in, c_out = (self.channels_A, self.channels_B) if self.src == "A" else (self.channels_B, self.channels_A)
        self.nets["G"] = build_generator(cfg.netG, c_in, c_out, cfg.ngf, cfg.norm, cfg.dropout, cfg.bias_without_norm)
        self.nets["D"] = build_patch_discriminator(cfg.netD, c_in + c_out, cfg.ndf, cfg.n_layers_D, cfg.norm,
                                                   cfg.bias_without_norm)
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain)
        multiple = size_multiple(self.nets["G"])
        if info.image_size % multiple:
            raise GantrainError(
                f"model.netG={cfg.netG} needs image sides divisible by {multiple}, but data gives {info.image_size} px; "
                f"pick netG=unet_{info.image_size} if that is a power of two, or a resnet generator"
            )

    # ------------------------------------------------------------------ training
    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        G, D, rt, loss = self.nets["G"], self.nets["D"], self.rt, self.loss
        real_in, real_out = batch[self.src], batch[self.dst]
        with rt.autocast():
            fake = G(real_in)
            d_real, d_fake = loss.d_pair(D(torch.cat([real_in, real_out], 1)), D(torch.cat([real_in, fake.detach()], 1)))
            loss_D = 0.5 * (d_real + d_fake)
        self.update("D", loss_D)
        with self.frozen(D):
            with rt.autocast():
                g_gan = loss.generator(D(torch.cat([real_in, fake], 1)))
                g_l1 = F.l1_loss(fake.float(), real_out.float())
                loss_G = g_gan + self.cfg.lambda_L1 * g_l1
            self.update("G", loss_G)
        return {"G_GAN": g_gan.detach(), "G_L1": g_l1.detach(), "D_real": d_real.detach(), "D_fake": d_fake.detach()}

    # ------------------------------------------------------------------ translation (gantrain-translate, metrics)
    def size_multiple(self, direction: str) -> int:
        """What image sides must divide by for `translate` (the U-Net's 2**levels)."""
        return size_multiple(self.nets["G"])

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str, nets: nn.ModuleDict | None = None) -> torch.Tensor:
        """Images of the input domain in [-1, 1] -> the output domain; only the trained direction exists."""
        if direction != self.direction:
            raise GantrainError(
                f"this pix2pix run learnt {self.direction} only (data.direction={self.direction}); translate with "
                f"direction {self.direction}, or train another run with data.direction={direction}"
            )
        G = local_batch_norm((nets or self.nets)["G"])  # train-mode BN here runs on one rank: no SyncBatchNorm
        mode = paper_inference(G, TEST_SEED) if self.cfg.test_mode == "train" else nullcontext()
        with mode, self.rt.autocast():
            return G(x.to(self.rt.device)).float()

    # ------------------------------------------------------------------ sampling
    def sample_grids(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> dict[str, torch.Tensor]:
        x = inputs[self.src].to(self.rt.device)
        return {"input": x, "output": self.translate(x, self.direction, nets), "target": inputs[self.dst].to(self.rt.device)}
