"""Per-item randomness as a pure function of an integer key: counter-based draws in int64 tensor arithmetic.

Every random choice a batch makes (crop offsets, flips, unpaired partners, captions) is `draw(keys, k, m)`:
a hash of the item's key and the draw number `k`, mapped to [0, m). The same integer ops give the same bits
on the CPU and on CUDA, inside a DataLoader worker and in a gather on the training device, so

- resume is exact (the key of item j of batch b in epoch e is fixed, see `loader.item_keys`),
- a streamed batch equals the in-memory batch for the same seed, whichever worker decoded it, and
- building a batch needs no generator state and no host-device transfer (no sync) on a GPU.
"""

from __future__ import annotations

import torch

M32 = 0xFFFFFFFF
_HASH = 0x45D9F3B  # < 2**27: a product with a 32-bit value never overflows int64
_GOLDEN = 0x9E3779B9

# Draw numbers: each random choice of a batch has its own, so adding one never shifts the others.
PARTNER, TOP, LEFT, FLIP = 0, 1, 2, 3
B_TOP, B_LEFT, B_FLIP = 4, 5, 6
CAPTION, WRONG_CAPTION, WRONG = 7, 8, 16  # WRONG .. WRONG + MISMATCH_TRIES - 1: mismatch candidates
# the 2nd, 3rd, ... caption of an item whose embedding averages several (`model.num_captions`, at most 16)
EXTRA_CAPTION, EXTRA_WRONG_CAPTION = 32, 48


def _mix(h: torch.Tensor) -> torch.Tensor:
    """A 32-bit avalanche hash (values in [0, 2**32) held in int64)."""
    h = h ^ (h >> 16)
    h = (h * _HASH) & M32
    h = h ^ (h >> 16)
    h = (h * _HASH) & M32
    return h ^ (h >> 16)


def draw(keys: torch.Tensor, k: int | torch.Tensor, m: int) -> torch.Tensor:
    """Integers in [0, m), one per key (int64 keys in [0, 2**63)); `k` may be a tensor that broadcasts."""
    if not 0 < m < 2**31:
        raise ValueError(f"draw range must be in [1, 2**31), got {m}")
    salt = (k * _GOLDEN + 1) & M32
    h = _mix(_mix(((keys >> 32) & M32) ^ salt) ^ (keys & M32))
    return (h * m) >> 32


def keys_from(gen: torch.Generator, n: int, device: torch.device) -> torch.Tensor:
    """Keys for callers that hold a generator (evaluation, encoder pre-training): n draws of 62 bits."""
    return torch.randint(0, 2**62, (n,), generator=gen).to(device)
