"""Freezing nets for one step: the generator's step through a discriminator, inversion through G and E."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch.nn as nn


@contextmanager
def frozen(*nets: nn.Module | None) -> Iterator[None]:
    """No weight gradients for `nets` inside the block (None entries skipped); each parameter's own flag comes
    back afterwards, so a net that was already frozen (or shares layers) is left as it was."""
    params = [p for net in nets if net is not None for p in net.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
