"""A small word-level caption encoder and the image encoder it is pretrained against (joint embedding).

Reed et al. (2016) condition on a pretrained text embedding; this is the offline stand-in: word embeddings ->
bidirectional GRU -> masked mean -> linear, trained so a caption lands near the images it describes.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class WordEncoder(nn.Module):
    """Token ids (B, L), 0 = padding -> (B, dim) embeddings with unit-variance components (norm sqrt(dim))."""

    def __init__(self, vocab_size: int, dim: int = 128, word_dim: int = 64, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.rnn = nn.GRU(word_dim, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, dim)
        self.dim = dim

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens != 0).float().unsqueeze(-1)
        h, _ = self.rnn(self.embed(tokens))
        pooled = (h * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return F.normalize(self.out(pooled), dim=1) * math.sqrt(self.dim)


class ImageEncoder(nn.Module):
    """Images in [-1, 1] -> (B, dim): the other tower of the joint embedding, discarded after pretraining."""

    def __init__(self, channels: int, dim: int = 128, width: int = 32) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(channels, w, 3, 2, 1), nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, 2, 1), nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1), nn.BatchNorm2d(4 * w), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, dim),
        )
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=1) * math.sqrt(self.dim)


def matching_contrastive_loss(text: torch.Tensor, image: torch.Tensor, content: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Symmetric InfoNCE where every pair with the same content id counts as a match (no false negatives
    from paraphrases or look-alike images in the batch)."""
    t, i = F.normalize(text, dim=1), F.normalize(image, dim=1)
    logits = t @ i.T / temperature
    same = content.view(-1, 1) == content.view(1, -1)
    pos = logits.masked_fill(~same, float("-inf"))
    t2i = torch.logsumexp(logits, 1) - torch.logsumexp(pos, 1)
    i2t = torch.logsumexp(logits, 0) - torch.logsumexp(pos, 0)
    return 0.5 * (t2i.mean() + i2t.mean())
