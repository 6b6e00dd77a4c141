"""Captions as the condition of a text-to-image family (`model=gan_cls`).

The family owns its nets and its game; this owns what turns captions into vectors: the frozen encoder
(`model.text_encoder`: a learned `WordEncoder` pretrained here, or the tables of an external encoder), the
vocabulary for free text, and the bank of fixed test captions that sample grids and evaluation condition on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from gantrain.data.captions import CaptionedImages, caption_set, decode_tokens, encode_captions
from gantrain.errors import GantrainError
from gantrain.text import encoders as enc
from gantrain.io import save_atomic

log = logging.getLogger(__name__)

ENCODER_FILE = "text_encoder.pt"  # the pretrained learned encoder, kept in the run so a resume does not redo it


class CaptionConditioning:
    """Caption embeddings for one model: `encoder` is the learned encoder (a net of the family, so checkpoints
    carry it) or None for the table encoders; `cfg` is the family's model config."""

    def __init__(self, cfg: Any, vocab: list[str], max_len: int, encoder: nn.Module | None) -> None:
        if cfg.text_encoder not in enc.ENCODERS:
            raise GantrainError(f"unknown model.text_encoder {cfg.text_encoder!r}; choose one of: {', '.join(enc.ENCODERS)}")
        self.cfg, self.vocab, self.max_len, self.encoder = cfg, vocab, max_len, encoder
        self.tables: dict[str, torch.Tensor] = {}
        self.train_tokens = torch.empty(0, 1, max_len, dtype=torch.long)  # the train split's (N, K, L), set by `prepare`
        self.bank: dict[str, Any] = {}
        self.pretrain_stats: dict[str, float] = {}
        self._sentence_model = None

    def prepare(self, train: CaptionedImages, test: CaptionedImages, channels: int, device: torch.device,
                run_dir: Path | None) -> None:
        """Pretrain (or reload from the run) the learned encoder, or build the external embedding tables; then
        the caption bank."""
        self.train_tokens = train.tokens.to(device)
        if self.encoder is not None:
            self._prepare_learned(train, test, channels, device, run_dir)
        else:
            if self.cfg.text_encoder == "sentence_transformer":
                model = self._sentence(device)
                tables = {"train": enc.sentence_table(model, train, self.vocab), "test": enc.sentence_table(model, test, self.vocab)}
            else:
                tables = enc.load_precomputed(self.cfg.text_encoder_path)
            for name, split in (("train", train), ("test", test)):
                enc.check_table(tables[name], split, name, self.cfg.text_dim)
            self.tables = {k: v.to(device) for k, v in tables.items()}
        self._build_bank(test, device)

    def _prepare_learned(self, train: CaptionedImages, test: CaptionedImages, channels: int, device: torch.device,
                         run_dir: Path | None) -> None:
        T = self.encoder
        path = Path(run_dir) / ENCODER_FILE if run_dir is not None else None
        if path is not None and path.is_file():
            blob = torch.load(path, map_location="cpu", weights_only=True)
            T.load_state_dict(blob["state_dict"])
            self.pretrain_stats = blob["stats"]
            log.info("text encoder loaded from %s", path)
            return
        cfg = self.cfg
        self.pretrain_stats = enc.pretrain_word_encoder(T, train, test, channels, cfg.pretrain_steps, cfg.pretrain_batch,
                                                        cfg.pretrain_lr, seed=0, device=device)
        if path is not None:
            save_atomic({"state_dict": {k: v.cpu() for k, v in T.state_dict().items()}, "stats": self.pretrain_stats}, path)

    def _sentence(self, device: torch.device):
        if self._sentence_model is None:
            self._sentence_model = enc.load_sentence_transformer(self.cfg.text_encoder_path, device)
        return self._sentence_model

    @torch.no_grad()
    def _build_bank(self, test: CaptionedImages, device: torch.device) -> None:
        """One caption per test image (fixed choice), embedded once: what grids and evaluation condition on."""
        n = min(self.cfg.bank_size, len(test))
        gen = torch.Generator().manual_seed(0)
        idx = torch.randperm(len(test), generator=gen)[:n].sort().values
        cap = torch.randint(test.tokens.shape[1], (n,), generator=gen)
        tokens = test.tokens[idx, cap].cpu()
        if self.tables:
            emb = self.tables["test"][idx.to(device), cap.clamp(max=self.tables["test"].shape[1] - 1).to(device)]
        else:
            emb = self.encoder(tokens.to(device))
        self.bank = {"emb": emb.float().cpu(), "index": idx.cpu(),  # index: the test image of each caption
                     "text": [decode_tokens(t, self.vocab) for t in tokens[: self.cfg.grid_captions]]}
        if test.attrs is not None:
            self.bank["attrs"] = test.attrs[idx.to(test.attrs.device)].cpu()

    def need_bank(self) -> None:
        if "emb" not in self.bank:
            raise GantrainError("this gan_cls model has no caption bank yet (it is built from the test split before training)")

    def state(self) -> dict[str, Any]:
        """What checkpoints keep (the family's extra state): the bank and the pretraining figures."""
        return {"bank": dict(self.bank), "pretrain": dict(self.pretrain_stats)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.bank = dict(state.get("bank", {}))
        self.pretrain_stats = dict(state.get("pretrain", {}))

    def embed_batch(self, batch: dict[str, torch.Tensor], prefix: str = "") -> torch.Tensor:
        """The embeddings of a training batch's captions (`prefix` "wrong_": its mismatching captions), each the
        mean over `model.num_captions` captions of its image (the official numCaption; 1: the batch's caption)."""
        index, m = batch[prefix + "index"], self.cfg.num_captions
        caps = caption_set(batch[prefix + "caption"], batch.get("key"), m, self.train_tokens.shape[1], bool(prefix))
        if self.tables:
            table = self.tables["train"]
            return table[index[:, None], caps.clamp(max=table.shape[1] - 1)].mean(1)
        with torch.no_grad():
            tokens = self.train_tokens[index[:, None], caps]  # (B, m, L)
            return self.encoder(tokens.flatten(0, 1)).view(len(index), m, -1).mean(1)

    @torch.no_grad()
    def embed_texts(self, texts: list[str], device: torch.device) -> tuple[torch.Tensor, list[str]]:
        """Embeddings for free text and the words the encoder has never seen (learned encoder only)."""
        if self.cfg.text_encoder == "precomputed":
            raise GantrainError("model.text_encoder=precomputed cannot embed new captions; sample without --text "
                                "(captions from the dataset) or train with text_encoder=learned")
        if self.cfg.text_encoder == "sentence_transformer":
            return enc.embed_sentences(self._sentence(device), texts).to(device), []
        tokens, unknown = encode_captions(texts, self.vocab, self.max_len)
        return self.encoder(tokens.to(device)), unknown
