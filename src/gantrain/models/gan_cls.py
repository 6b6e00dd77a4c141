"""`model=gan_cls`: text-to-image GAN-CLS / GAN-INT-CLS (Reed et al. 2016).

D scores (image, caption) pairs: s_r = D(x, h) for a real image with its caption, s_w = D(x, h_wrong) for a
real image with a mismatching caption (from an image of other content), s_f = D(G(z, h), h). Its loss is
BCE(s_r, 1) + cls_weight * [BCE(s_w, 0) + BCE(s_f, 0)] (cls_weight 0.5 in the paper); with
`matching_aware=false` it is the plain conditional GAN BCE(s_r, 1) + BCE(s_f, 0). G is non-saturating on s_f.
GAN-INT (`interpolate=true`) also feeds G interpolated embeddings beta*h1 + (1 - beta)*h2 of two batch halves;
only G's loss sees them. Captions are embedded by a frozen encoder (see `gantrain.text.encoders`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from gantrain.data.base import DataInfo, DataSource
from gantrain.data.captions import CaptionedImages, decode_tokens, encode_captions
from gantrain.errors import GantrainError
from gantrain.models.base import GANModel, requires_grad
from gantrain.nets.init import init_weights
from gantrain.nets.text_conditional import MatchingDiscriminator, TextConditionedGenerator
from gantrain.nets.text_encoder import WordEncoder
from gantrain.text import encoders as enc
from gantrain.text.panel import caption_panel
from gantrain.trainer.checkpoint import save_atomic

log = logging.getLogger(__name__)

ENCODER_FILE = "text_encoder.pt"


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class GANCLS(GANModel):
    default_metrics, conditioning = ("text2image",), "text"

    @dataclass
    class Config:
        name: str = "gan_cls"
        z_dim: int = 100
        z_dist: str = "normal"
        ngf: int = 128
        ndf: int = 64
        norm_G: str = "batch"
        norm_D: str = "batch"
        proj_dim: int = 128  # the text projection (Linear + LeakyReLU 0.2) in G and D
        matching_aware: bool = True  # GAN-CLS: the mismatching-caption term; false: plain conditional GAN
        cls_weight: float = 0.5  # weight of each fake term (wrong caption, generated image) in D's loss
        interpolate: bool = False  # GAN-INT: G also trains on interpolated embeddings
        int_beta: float = 0.5
        text_encoder: str = "learned"  # learned | sentence_transformer | precomputed
        text_encoder_path: Optional[str] = None  # sentence_transformer: folder or name; precomputed: file or folder
        text_dim: int = 128  # caption embedding size (must match an external encoder's)
        word_dim: int = 64  # learned encoder: word embeddings and GRU width
        pretrain_steps: int = 200  # learned encoder: joint image-text pretraining before the GAN
        pretrain_batch: int = 128
        pretrain_lr: float = 2e-3
        bank_size: int = 1000  # test captions kept for sample grids and evaluation
        grid_captions: int = 8
        init_type: str = "normal"
        init_gain: float = 0.02

    def __init__(self, cfg, info: DataInfo) -> None:
        super().__init__(cfg, info)
        if cfg.text_encoder not in enc.ENCODERS:
            raise GantrainError(f"unknown model.text_encoder {cfg.text_encoder!r}; choose one of: {', '.join(enc.ENCODERS)}")
        if not 0.0 <= cfg.int_beta <= 1.0:
            raise GantrainError(f"model.int_beta={cfg.int_beta} must lie in [0, 1]")
        self.vocab: list[str] = list(info.extra.get("vocab", []))
        self.max_len = int(info.extra.get("max_len", 32))
        shape = (info.channels, info.image_size)
        self.nets["G"] = TextConditionedGenerator(cfg.z_dim, cfg.text_dim, cfg.proj_dim, *shape, cfg.ngf, cfg.norm_G)
        self.nets["D"] = MatchingDiscriminator(cfg.text_dim, cfg.proj_dim, *shape, cfg.ndf, cfg.norm_D)
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain)
        if cfg.text_encoder == "learned":
            if not self.vocab:
                raise GantrainError(f"model.text_encoder=learned needs a captioned dataset with a vocabulary; data={info.name} has none")
            self.nets["T"] = WordEncoder(len(self.vocab), cfg.text_dim, cfg.word_dim, cfg.word_dim)
            requires_grad(self.nets["T"], False)
        self.tables: dict[str, torch.Tensor] = {}
        self.bank: dict[str, Any] = {}
        self.pretrain_stats: dict[str, float] = {}
        self._sentence_model = None

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"G": list(self.nets["G"].parameters()), "D": list(self.nets["D"].parameters())}

    # ----- before training: text encoder and the caption bank -----
    def prepare(self, data: DataSource, run_dir: Path | None = None) -> None:
        """Pretrain (or reload from the run) the learned encoder, or build the external embedding tables."""
        train, test = data.split("train"), data.split("test")
        if not isinstance(train, CaptionedImages) or not isinstance(test, CaptionedImages):
            raise GantrainError(f"model=gan_cls needs a captioned dataset (shapes, cub, flowers102, captioned_folder), not data={self.info.name}")
        device = self.rt.device
        if self.cfg.text_encoder == "learned":
            self._prepare_learned(train, test, run_dir)
        else:
            if self.cfg.text_encoder == "sentence_transformer":
                model = self._sentence()
                tables = {"train": enc.sentence_table(model, train, self.vocab), "test": enc.sentence_table(model, test, self.vocab)}
            else:
                tables = enc.load_precomputed(self.cfg.text_encoder_path)
            for name, split in (("train", train), ("test", test)):
                enc.check_table(tables[name], split, name, self.cfg.text_dim)
            self.tables = {k: v.to(device) for k, v in tables.items()}
        self._build_bank(test)

    def _prepare_learned(self, train: CaptionedImages, test: CaptionedImages, run_dir: Path | None) -> None:
        T = self.nets["T"]
        path = Path(run_dir) / ENCODER_FILE if run_dir is not None else None
        if path is not None and path.is_file():
            blob = torch.load(path, map_location="cpu", weights_only=True)
            T.load_state_dict(blob["state_dict"])
            self.pretrain_stats = blob["stats"]
            log.info("text encoder loaded from %s", path)
            return
        requires_grad(T, True)
        self.pretrain_stats = enc.pretrain_word_encoder(
            T, train, test, self.info.channels, self.cfg.pretrain_steps, self.cfg.pretrain_batch,
            self.cfg.pretrain_lr, seed=0, device=self.rt.device,
        )
        if path is not None:
            save_atomic({"state_dict": {k: v.cpu() for k, v in T.state_dict().items()}, "stats": self.pretrain_stats}, path)

    def _sentence(self):
        if self._sentence_model is None:
            self._sentence_model = enc.load_sentence_transformer(self.cfg.text_encoder_path, self.rt.device)
        return self._sentence_model

    @torch.no_grad()
    def _build_bank(self, test: CaptionedImages) -> None:
        """One caption per test image (fixed choice), embedded once: what grids and evaluation condition on."""
        n = min(self.cfg.bank_size, len(test))
        gen = torch.Generator().manual_seed(0)
        idx = torch.randperm(len(test), generator=gen)[:n].sort().values
        cap = torch.randint(test.tokens.shape[1], (n,), generator=gen)
        tokens = test.tokens[idx, cap].cpu()
        if self.tables:
            emb = self.tables["test"][idx.to(self.rt.device), cap.clamp(max=self.tables["test"].shape[1] - 1).to(self.rt.device)]
        else:
            emb = self.nets["T"](tokens.to(self.rt.device))
        self.bank = {"emb": emb.float().cpu(), "text": [decode_tokens(t, self.vocab) for t in tokens[: self.cfg.grid_captions]]}
        if test.attrs is not None:
            self.bank["attrs"] = test.attrs[idx.to(test.attrs.device)].cpu()

    def extra_state(self) -> dict[str, Any]:
        return {"bank": dict(self.bank), "pretrain": dict(self.pretrain_stats)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.bank = dict(state.get("bank", {}))
        self.pretrain_stats = dict(state.get("pretrain", {}))

    # ----- embeddings -----
    def _embed_batch(self, batch: dict[str, torch.Tensor], prefix: str = "") -> torch.Tensor:
        if self.tables:
            table = self.tables["train"]
            cap = batch[prefix + "caption"].clamp(max=table.shape[1] - 1)
            return table[batch[prefix + "index"], cap]
        with torch.no_grad():
            return self.nets["T"](batch[prefix + "tokens"])

    @torch.no_grad()
    def embed_texts(self, texts: list[str]) -> tuple[torch.Tensor, list[str]]:
        """Embeddings for free text and the words the encoder has never seen (learned encoder only)."""
        if self.cfg.text_encoder == "precomputed":
            raise GantrainError("model.text_encoder=precomputed cannot embed new captions; sample without --text "
                                "(captions from the dataset) or train with text_encoder=learned")
        if self.cfg.text_encoder == "sentence_transformer":
            return enc.embed_sentences(self._sentence(), texts).to(self.rt.device), []
        tokens, unknown = encode_captions(texts, self.vocab, self.max_len)
        return self.nets["T"](tokens.to(self.rt.device)), unknown

    # ----- training -----
    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        G, D, rt, cfg = self.nets["G"], self.nets["D"], self.rt, self.cfg
        real = batch["image"]
        h = self._embed_batch(batch)
        z = self.sample_z(real.shape[0])
        with rt.autocast():
            fake = G(z, h)
            s_r, s_f = D(real, h), D(fake.detach(), h)
            d_real, d_fake = _bce(s_r, 1.0), _bce(s_f, 0.0)
            if cfg.matching_aware:
                s_w = D(real, self._embed_batch(batch, "wrong_"))
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
        requires_grad(D, False)
        with rt.autocast():
            scores = D(fake, h)
            if cfg.interpolate and real.shape[0] >= 2:
                half = real.shape[0] // 2
                h_int = cfg.int_beta * h[:half] + (1 - cfg.int_beta) * h[half : 2 * half]
                scores = torch.cat([scores, D(G(self.sample_z(half), h_int), h_int)])
            loss_G = _bce(scores, 1.0)
        self.update("G", loss_G)
        requires_grad(D, True)
        out["G"] = loss_G.detach()
        return out

    # ----- sampling -----
    def _need_bank(self) -> None:
        if "emb" not in self.bank:
            raise GantrainError("this gan_cls model has no caption bank yet (it is built from the test split before training)")

    def fixed_inputs(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """n random test captions (with their attributes as `label`, when the data has them) and z."""
        self._need_bank()
        z = self.sample_z(n, generator)
        idx = torch.randint(len(self.bank["emb"]), (n,), generator=generator)
        inputs = {"z": z, "emb": self.bank["emb"][idx].to(self.rt.device)}
        if "attrs" in self.bank:
            inputs["label"] = self.bank["attrs"][idx]
        return inputs

    @torch.no_grad()
    def generate(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> torch.Tensor:
        G = (nets or self.nets)["G"]
        with self.rt.autocast():
            return G(inputs["z"].to(self.rt.device), inputs["emb"].to(self.rt.device)).float()

    @torch.no_grad()
    def sample_grids(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> dict[str, torch.Tensor]:
        """One row per fixed test caption (written on the left), the same z values in every column."""
        self._need_bank()
        rows = min(self.cfg.grid_captions, len(self.bank["text"]))
        cols = max(min(8, inputs["z"].shape[0]), 1)
        z = inputs["z"][:cols].to(self.rt.device).repeat(rows, 1)
        emb = self.bank["emb"][:rows].to(self.rt.device).repeat_interleave(cols, 0)
        images = self.generate({"z": z, "emb": emb}, nets).cpu().clamp(-1, 1)
        return {"captions": captioned_grid(images, self.bank["text"][:rows], cols)}

    def grid_rows(self) -> int | None:
        return 1


def captioned_grid(images: torch.Tensor, captions: list[str], cols: int, pad: int = 2) -> torch.Tensor:
    """(1, C, H, W) in [-1, 1]: a caption panel beside rows of `cols` images each."""
    from torchvision.utils import make_grid

    s = images.shape[-1]
    grid = make_grid(images, nrow=cols, padding=pad, pad_value=-1.0)
    panel = caption_panel(captions, s, width=max(6 * 40, s), pad=pad)
    if images.shape[1] == 1:
        panel = panel[:1]
    return torch.cat([panel[:, : grid.shape[1]], grid[: images.shape[1]]], dim=2).unsqueeze(0)
