"""`model=gan_cls`: text-to-image GAN-CLS / GAN-INT-CLS (Reed et al. 2016).

D scores (image, caption) pairs: s_r = D(x, h) for a real image with its caption, s_w = D(x, h_wrong) for a
real image with a mismatching caption (from an image of other content), s_f = D(G(z, h), h). Its loss is
BCE(s_r, 1) + cls_weight * [BCE(s_w, 0) + BCE(s_f, 0)] (cls_weight 0.5 in the paper); with
`matching_aware=false` it is the plain conditional GAN BCE(s_r, 1) + BCE(s_f, 0). G is non-saturating on s_f.
GAN-INT (`interpolate=true`) also feeds G interpolated embeddings beta*h1 + (1 - beta)*h2 of two batch halves;
only G's loss sees them. Captions are embedded by a frozen encoder (`gantrain.text.conditioning`); a training
embedding is the mean over `num_captions` captions of the image (4 in the official code).
`lambda_ms > 0` adds MSGAN's mode-seeking term (Mao et al. 2019; not in Reed et al.) to G's loss: for half the
batch a second z with the same embedding, lambda_ms / (mean|G(z1,h) - G(z2,h)| / mean|z1 - z2| + 1e-5), so G
cannot map every z of a caption to one image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import MISSING

from gantrain.data.base import DataInfo, DataSource
from gantrain.data.captions import CaptionedImages
from gantrain.errors import GantrainError
from gantrain.models.base import GANModel
from gantrain.nets.init import init_weights
from gantrain.nets.text_conditional import MatchingDiscriminator, TextConditionedGenerator
from gantrain.nets.text_encoder import WordEncoder
from gantrain.text.conditioning import CaptionConditioning
from gantrain.text.panel import captioned_grid

def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class GANCLS(GANModel):
    default_metrics, conditioning = ("text2image", "caption_diversity"), "text"

    @dataclass
    class Config:
        name: str = MISSING
        z_dim: int = MISSING
        z_dist: str = MISSING
        ngf: int = MISSING
        ndf: int = MISSING
        norm_G: str = MISSING
        norm_D: str = MISSING
        g_residual: bool = MISSING  # G's residual bottleneck blocks at 4x4 and 8x8 (official code)
        g_upsample: str = MISSING  # transposed (official) | resize | resize_last
        d_residual: bool = MISSING  # a residual bottleneck block at D's 4x4 (built, never attached, in the official code)
        proj_dim: int = MISSING  # the text projection (Linear -> norm -> LeakyReLU 0.2) in G and D
        proj_norm_G: str = MISSING  # its norm in G (official: none)
        proj_norm_D: str = MISSING  # its norm in D (official: batch)
        num_captions: int = MISSING  # captions averaged into one training embedding per image (official numCaption)
        matching_aware: bool = MISSING  # GAN-CLS: the mismatching-caption term; false: plain conditional GAN
        cls_weight: float = MISSING  # weight of each fake term (wrong caption, generated image) in D's loss
        interpolate: bool = MISSING  # GAN-INT: G also trains on interpolated embeddings
        int_beta: float = MISSING
        lambda_ms: float = MISSING  # MSGAN's mode-seeking term in G's loss (0: off, as in Reed et al.)
        text_encoder: str = MISSING  # learned | sentence_transformer | precomputed
        text_encoder_path: Optional[str] = MISSING  # sentence_transformer: folder or name; precomputed: file or folder
        text_dim: int = MISSING  # caption embedding size (must match an external encoder's)
        word_dim: int = MISSING  # learned encoder: word embeddings and GRU width
        pretrain_steps: int = MISSING  # learned encoder: joint image-text pretraining before the GAN
        pretrain_batch: int = MISSING
        pretrain_lr: float = MISSING
        bank_size: int = MISSING  # test captions kept for sample grids and evaluation
        grid_captions: int = MISSING
        init_type: str = MISSING
        init_gain: float = MISSING

    def __init__(self, cfg, info: DataInfo) -> None:
        super().__init__(cfg, info)
        if not 0.0 <= cfg.int_beta <= 1.0:
            raise GantrainError(f"model.int_beta={cfg.int_beta} must lie in [0, 1]")
        vocab: list[str] = list(info.vocab)
        shape = (info.channels, info.image_size)
        self.nets["G"] = TextConditionedGenerator(cfg.z_dim, cfg.text_dim, cfg.proj_dim, *shape, cfg.ngf, cfg.norm_G,
                                                  cfg.proj_norm_G, cfg.g_residual, cfg.g_upsample)
        self.nets["D"] = MatchingDiscriminator(cfg.text_dim, cfg.proj_dim, *shape, cfg.ndf, cfg.norm_D, cfg.proj_norm_D,
                                               cfg.d_residual)
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain)
        if cfg.text_encoder == "learned":
            if not vocab:
                raise GantrainError(f"model.text_encoder=learned needs a captioned dataset with a vocabulary; data={info.name} has none")
            self.nets["T"] = WordEncoder(len(vocab), cfg.text_dim, cfg.word_dim, cfg.word_dim)
            self.nets["T"].requires_grad_(False)  # frozen: only its pretraining (in `prepare`) trains it
        self.text = CaptionConditioning(cfg, vocab, info.max_len, self.nets["T"] if "T" in self.nets else None)

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"G": list(self.nets["G"].parameters()), "D": list(self.nets["D"].parameters())}

    def prepare(self, data: DataSource, run_dir: Path | None = None) -> None:
        """The frozen text encoder (pretrained, reloaded or external) and the caption bank, before training."""
        train, test = data.split("train"), data.split("test")
        if not isinstance(train, CaptionedImages) or not isinstance(test, CaptionedImages):
            raise GantrainError(f"model=gan_cls needs a captioned dataset (shapes, cub, flowers102, captioned_folder), not data={self.info.name}")
        self.text.prepare(train, test, self.info.channels, self.rt.device, run_dir)

    def extra_state(self) -> dict[str, Any]:
        return self.text.state()

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.text.load_state(state)

    def embed_texts(self, texts: list[str]) -> tuple[torch.Tensor, list[str]]:
        """Embeddings for free text (`gantrain-sample-text`) and the words the encoder has never seen."""
        return self.text.embed_texts(texts, self.rt.device)

    def caption_bank(self) -> dict[str, Any]:
        """The fixed test captions evaluation conditions on: `emb`, `index` (their test images), `attrs`, `text`."""
        self.text.need_bank()
        return self.text.bank

    # ----- training -----
    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        G, D, rt, cfg = self.nets["G"], self.nets["D"], self.rt, self.cfg
        real = batch["image"]
        h = self.text.embed_batch(batch)
        z = self.sample_z(real.shape[0])
        with rt.autocast():
            fake = G(z, h)
            s_r, s_f = D(real, h), D(fake.detach(), h)
            d_real, d_fake = _bce(s_r, 1.0), _bce(s_f, 0.0)
            if cfg.matching_aware:
                s_w = D(real, self.text.embed_batch(batch, "wrong_"))
                d_wrong = _bce(s_w, 0.0)
                loss_D = d_real + cfg.cls_weight * (d_wrong + d_fake)
            else:
                loss_D = d_real + d_fake
        self.update("D", loss_D)
        out = {"D": loss_D.detach(), "D_real": d_real.detach(), "D_fake": d_fake.detach(),
               "score_real": torch.sigmoid(s_r.detach().float()).mean(), "score_fake": torch.sigmoid(s_f.detach().float()).mean()}
        if cfg.matching_aware:
            out["D_wrong"] = d_wrong.detach()
            out["score_wrong"] = torch.sigmoid(s_w.detach().float()).mean()
        with self.frozen(D):
            with rt.autocast():
                scores = D(fake, h)
                if cfg.interpolate and real.shape[0] >= 2:
                    half = real.shape[0] // 2
                    h_int = cfg.int_beta * h[:half] + (1 - cfg.int_beta) * h[half : 2 * half]
                    scores = torch.cat([scores, D(G(self.sample_z(half), h_int), h_int)])
                loss_G = _bce(scores, 1.0)
                ms = self._mode_seeking(fake, z, h) if cfg.lambda_ms > 0 and real.shape[0] >= 2 else None
                if ms is not None:
                    loss_G = loss_G + cfg.lambda_ms * ms
            self.update("G", loss_G)
        if ms is not None:
            out["G_ms"] = ms.detach()
        out["G"] = loss_G.detach()
        return out

    def _mode_seeking(self, fake: torch.Tensor, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """MSGAN's term on the first half of the batch: a second z, same captions; small when images differ."""
        half = fake.shape[0] // 2
        z2 = self.sample_z(half)
        fake2 = self.nets["G"](z2, h[:half])
        ratio = (fake[:half].float() - fake2.float()).abs().mean() / (z[:half] - z2).abs().mean()
        return 1.0 / (ratio + 1e-5)

    # ----- sampling -----
    def fixed_inputs(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """n random test captions (with their attributes as `label`, when the data has them) and z."""
        self.text.need_bank()
        z = self.sample_z(n, generator)
        idx = torch.randint(len(self.text.bank["emb"]), (n,), generator=generator)
        inputs = {"z": z, "emb": self.text.bank["emb"][idx].to(self.rt.device)}
        if "attrs" in self.text.bank:
            inputs["label"] = self.text.bank["attrs"][idx]
        return inputs

    @torch.no_grad()
    def generate(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> torch.Tensor:
        G = (nets or self.nets)["G"]
        with self.rt.autocast():
            return G(inputs["z"].to(self.rt.device), inputs["emb"].to(self.rt.device)).float()

    @torch.no_grad()
    def sample_grids(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> dict[str, torch.Tensor]:
        """One row per fixed test caption (written on the left), the same z values in every column."""
        self.text.need_bank()
        rows = min(self.cfg.grid_captions, len(self.text.bank["text"]))
        cols = max(min(8, inputs["z"].shape[0]), 1)
        z = inputs["z"][:cols].to(self.rt.device).repeat(rows, 1)
        emb = self.text.bank["emb"][:rows].to(self.rt.device).repeat_interleave(cols, 0)
        images = self.generate({"z": z, "emb": emb}, nets).cpu().clamp(-1, 1)
        return {"captions": captioned_grid(images, self.text.bank["text"][:rows], cols)}

    def grid_rows(self) -> int | None:
        return 1

