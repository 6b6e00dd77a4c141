"""Where a text-to-image family gets its caption embeddings (`model.text_encoder`).

- `learned`: `nets.text_encoder.WordEncoder`, pretrained on the dataset's own image-caption pairs with a joint
  image-text contrastive objective, then frozen (it lives in the family's nets, so checkpoints carry it).
- `sentence_transformer`: a pretrained sentence encoder (optional extra `text`) from a local folder or a name.
- `precomputed`: embeddings shipped with a dataset (e.g. the char-CNN-RNN embeddings for CUB/Oxford-102).

The last two are tables (image, caption) -> embedding built before training, looked up per batch.
"""

from __future__ import annotations

import logging
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gantrain.data.captions import CaptionedImages, decode_tokens
from gantrain.errors import GantrainError
from gantrain.nets.text_encoder import ImageEncoder, WordEncoder, matching_contrastive_loss
from gantrain.rng import isolated_rng

log = logging.getLogger(__name__)

ENCODERS = ("learned", "sentence_transformer", "precomputed")


def pretrain_word_encoder(encoder: WordEncoder, train: CaptionedImages, test: CaptionedImages, channels: int,
                          steps: int, batch_size: int, lr: float, seed: int, device: torch.device) -> dict[str, float]:
    """Train `encoder` jointly with a throw-away image encoder, then freeze it; returns held-out retrieval accuracy.

    Runs in `isolated_rng(seed)`, so the caller's CPU and CUDA streams are untouched (never reseeded)."""
    encoder.requires_grad_(True)
    try:
        with isolated_rng(seed):
            return _pretrain(encoder, train, test, channels, steps, batch_size, lr, seed, device)
    finally:
        encoder.requires_grad_(False)


def _pretrain(encoder: WordEncoder, train: CaptionedImages, test: CaptionedImages, channels: int,
              steps: int, batch_size: int, lr: float, seed: int, device: torch.device) -> dict[str, float]:
    images = ImageEncoder(channels, encoder.dim).to(device)
    params = list(encoder.parameters()) + list(images.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    encoder.train(), images.train()
    start = time.perf_counter()
    bs = min(batch_size, len(train))
    for _ in range(steps):
        idx = torch.randperm(len(train), generator=gen)[:bs]
        batch = train.batch(idx, gen)
        loss = matching_contrastive_loss(encoder(batch["tokens"].to(device)), images(batch["image"].to(device)),
                                         train.content[idx.to(train.content.device)].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    encoder.eval(), images.eval()
    with torch.no_grad():  # caption -> image retrieval among a held-out batch (content matches count)
        idx = torch.arange(min(len(test), 256))
        batch = test.batch(idx, torch.Generator().manual_seed(seed))
        t, i = encoder(batch["tokens"].to(device)), images(batch["image"].to(device))
        best = (t @ i.T).argmax(1).cpu()
        content = test.content[idx.to(test.content.device)].cpu()
        r1 = float((content[best] == content).float().mean())
    stats = {"loss": float(loss.detach()), "test_r1": r1, "steps": steps, "seconds": time.perf_counter() - start}
    log.info("text encoder pretrained: %d steps in %.0f s, final loss %.3f, held-out caption->image R@1 %.3f (batch %d)",
             steps, stats["seconds"], stats["loss"], r1, len(idx))
    return stats


def load_sentence_transformer(name_or_path: str | None, device: torch.device):
    if not name_or_path:
        raise GantrainError("model.text_encoder=sentence_transformer needs model.text_encoder_path (a local folder or a model name)")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise GantrainError("model.text_encoder=sentence_transformer needs the optional extra: pip install 'gantrain[text]'") from None
    try:
        return SentenceTransformer(name_or_path, device=str(device))
    except Exception as exc:  # noqa: BLE001 - any failure to find or read the model is the user's to fix
        raise GantrainError(f"cannot load sentence encoder {name_or_path!r} ({str(exc).splitlines()[0]}); "
                            "give a local folder with a saved SentenceTransformer or a cached model name") from None


def embed_sentences(model: Any, texts: list[str], batch_size: int = 256) -> torch.Tensor:
    out = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    return torch.as_tensor(np.asarray(out), dtype=torch.float32)


def sentence_table(model: Any, split: CaptionedImages, vocab: list[str]) -> torch.Tensor:
    """(N, K, D) embeddings of every caption of a split (captions decoded from their token ids)."""
    n, k, _ = split.tokens.shape
    flat = split.tokens.reshape(n * k, -1).cpu()
    distinct: dict[str, int] = {}
    texts = [decode_tokens(row, vocab) for row in flat]
    for t in texts:
        distinct.setdefault(t, len(distinct))
    emb = embed_sentences(model, list(distinct))
    return emb[torch.tensor([distinct[t] for t in texts])].view(n, k, -1)


def _as_table(value: Any, where: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(value), dtype=torch.float32)
    if t.dim() == 2:  # one embedding per image
        t = t.unsqueeze(1)
    if t.dim() != 3:
        raise GantrainError(f"precomputed embeddings {where} must be shaped (images, captions, dim), got {tuple(t.shape)}")
    return t


def load_precomputed(path: str | None) -> dict[str, torch.Tensor]:
    """{'train': (N, K, D), 'test': ...} from a .pt/.npz with those keys, or a folder in the StackGAN layout
    (`train/char-CNN-RNN-embeddings.pickle`, `test/char-CNN-RNN-embeddings.pickle`)."""
    if not path:
        raise GantrainError("model.text_encoder=precomputed needs model.text_encoder_path (a .pt/.npz file or the embeddings folder)")
    p = Path(path).expanduser()
    if p.is_dir():
        tables = {}
        for split in ("train", "test"):
            f = p / split / "char-CNN-RNN-embeddings.pickle"
            if not f.is_file():
                raise GantrainError(f"precomputed embeddings: {f} is missing; expected {p}/<train|test>/char-CNN-RNN-embeddings.pickle")
            with open(f, "rb") as fh:
                tables[split] = _as_table(pickle.load(fh, encoding="latin1"), str(f))
        return tables
    if not p.is_file():
        raise GantrainError(f"precomputed embeddings file {p} does not exist; set model.text_encoder_path")
    if p.suffix == ".npz":
        with np.load(p) as z:
            raw = {k: z[k] for k in z.files}
    else:
        raw = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(raw, dict) or not {"train", "test"} <= set(raw):
        raise GantrainError(f"precomputed embeddings {p} must hold 'train' and 'test' arrays shaped (images, captions, dim)")
    return {k: _as_table(raw[k], f"{p}[{k}]") for k in ("train", "test")}


def check_table(table: torch.Tensor, split: CaptionedImages, name: str, dim: int) -> None:
    if table.shape[0] != len(split) or table.shape[1] < split.tokens.shape[1] and table.shape[1] != 1:
        raise GantrainError(
            f"precomputed {name} embeddings have {table.shape[0]} images x {table.shape[1]} captions but the {name} split "
            f"has {len(split)} x {split.tokens.shape[1]}; the rows must follow the dataset's image order")
    if table.shape[2] != dim:
        raise GantrainError(f"the text embeddings are {table.shape[2]}-d but model.text_dim={dim}; set model.text_dim={table.shape[2]}")
