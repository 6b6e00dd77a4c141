"""Captioned images in memory: images, several tokenised captions each, and what mismatching pairs need.

Shared by every text-to-image dataset (`shapes`, `cub`, `flowers102`, `captioned_folder`). A batch holds the
image, one of its captions (drawn from the item's key, `keys.py`) and a *mismatching* caption taken from another
image whose content differs (another class, or other attributes), never a paraphrase of the right one.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Callable

import torch

from gantrain.data.augment import random_flip
from gantrain.data.base import InMemorySplit, take
from gantrain.data.keys import CAPTION, EXTRA_CAPTION, EXTRA_WRONG_CAPTION, WRONG, WRONG_CAPTION, draw

PAD, UNK = "<pad>", "<unk>"
MISMATCH_TRIES = 16
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words and punctuation marks, the only text normalisation every encoder shares."""
    return _WORD.findall(text.lower())


def build_vocab(captions: list[str], min_count: int = 1) -> list[str]:
    """Index 0 is padding and 1 unknown; the rest sorted by frequency then spelling (deterministic)."""
    counts = Counter(w for c in captions for w in tokenize(c))
    words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    return [PAD, UNK, *words]


def encode_captions(captions: list[str], vocab: list[str], max_len: int) -> tuple[torch.Tensor, list[str]]:
    """(len(captions), max_len) int64 token ids (0-padded, truncated) and the words not in `vocab`."""
    index = {w: i for i, w in enumerate(vocab)}
    rows: dict[str, list[int]] = {}  # template captions repeat a lot: tokenise each distinct one once
    unknown: list[str] = []
    for caption in captions:
        if caption in rows:
            continue
        words = tokenize(caption)[:max_len]
        unknown += [w for w in words if w not in index and w not in unknown]
        rows[caption] = [index.get(w, 1) for w in words] + [0] * (max_len - len(words))
    ids = torch.tensor([rows[c] for c in captions], dtype=torch.long).view(len(captions), max_len)
    return ids, unknown


def decode_tokens(ids: torch.Tensor, vocab: list[str]) -> str:
    return " ".join(vocab[i] for i in ids.tolist() if i != 0)


def caption_set(first: torch.Tensor, keys: torch.Tensor, m: int, k: int, wrong: bool = False) -> torch.Tensor:
    """(B, m) caption numbers (of the k per image) per item: the batch's own `caption` (or `wrong_caption`) first,
    then m - 1 more drawn from the item keys independently, with replacement (as the official loader,
    reedscot/icml2016 data/donkey_folder_txt.lua `sample_no_repl`, draws its `numCaption` captions)."""
    if m == 1:
        return first[:, None]
    start = EXTRA_WRONG_CAPTION if wrong else EXTRA_CAPTION
    more = draw(keys[:, None], torch.arange(start, start + m - 1, device=keys.device)[None, :], k)
    return torch.cat([first[:, None], more], 1)


class CaptionedImages(InMemorySplit):
    """uint8 images (N, C, H, W), token ids (N, K, L), a content id per image (N,) that decides which captions
    mismatch, and optional attributes (N, A) for attribute metrics.

    `batch` returns `image`, `tokens` (B, L), `index`, `caption` (which of the K), `wrong_tokens`,
    `wrong_index`, `wrong_caption`, `key` (the item keys, from which `caption_set`
    draws more captions per item), and `attrs` when there are attributes.
    """

    def __init__(self, images: Any, tokens: torch.Tensor, content: torch.Tensor,
                 attrs: torch.Tensor | None = None, flip: bool = False) -> None:
        if images.dtype != torch.uint8 or len(images.shape) != 4 or tokens.dim() != 3 or len(tokens) != images.shape[0]:
            raise ValueError("CaptionedImages wants uint8 images (N, C, H, W) and token ids (N, K, L)")
        self.images, self.tokens, self.content, self.attrs, self.flip = images, tokens, content, attrs, flip
        if torch.unique(content).numel() < 2:
            raise ValueError("mismatching captions need images of at least two different contents")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "CaptionedImages":
        attrs = None if self.attrs is None else fn(self.attrs)
        images = fn(self.images) if torch.is_tensor(self.images) else self.images
        return CaptionedImages(images, fn(self.tokens), fn(self.content), attrs, self.flip)

    def mismatching(self, index: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """For each index, another image with a different content id: the first of MISMATCH_TRIES candidates
        that differs (the last candidate if none does), all drawn at once (no per-try host sync)."""
        tries = torch.arange(WRONG, WRONG + MISMATCH_TRIES, device=index.device)
        cand = draw(keys[:, None], tries[None, :], len(self))  # (B, T)
        differs = self.content[cand] != self.content[index][:, None]
        differs[:, -1] = True
        return cand.gather(1, differs.int().argmax(1, keepdim=True)).squeeze(1)

    def gather(self, index: torch.Tensor, keys: torch.Tensor | None) -> dict[str, torch.Tensor]:
        augment = keys is not None
        keys = keys if augment else index  # evaluation: a fixed caption choice per image, no flips
        k = self.tokens.shape[1]
        x = take(self.images, index)
        if self.flip and augment:
            x = random_flip(x, keys)
        caption = draw(keys, CAPTION, k)
        wrong = self.mismatching(index, keys)
        wrong_caption = draw(keys, WRONG_CAPTION, k)
        out = {
            "image": x,
            "tokens": self.tokens[index, caption],
            "index": index,
            "caption": caption,
            "wrong_tokens": self.tokens[wrong, wrong_caption],
            "wrong_index": wrong,
            "wrong_caption": wrong_caption,
            "key": keys,
        }
        if self.attrs is not None:
            out["attrs"] = self.attrs.index_select(0, index)
        return out
