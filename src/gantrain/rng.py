"""Seeding and capturing every RNG the run uses, in a form `torch.load(weights_only=True)` accepts.

`isolated_rng` is how everything that is not training (evaluation, samples, EMA batch-norm refresh, metric-net
and text-encoder training) uses randomness: inside it the python, numpy, torch CPU and every initialised CUDA
generator are forked, so the training streams continue afterwards exactly as if the block had not run.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def isolated_rng(seed: int | None = None) -> Iterator[None]:
    """Fork python, numpy, torch CPU and every CUDA device's RNG for the block, restoring all of them after.

    With `seed`, the block starts from that seed (repeatable dropout, init, shuffles) without reseeding the
    caller's streams. CUDA generators are forked only once CUDA is initialised: before that no training
    stream lives there, and touching them would initialise CUDA in a CPU run.
    """
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    saved_py, saved_np = random.getstate(), np.random.get_state()
    saved_cpu = torch.get_rng_state()
    saved_cuda = torch.cuda.get_rng_state_all() if cuda else []
    try:
        if seed is not None:
            random.seed(seed)
            np.random.seed(seed % (2**32))
            torch.default_generator.manual_seed(seed)
            if cuda:
                torch.cuda.manual_seed_all(seed)
        yield
    finally:
        random.setstate(saved_py)
        np.random.set_state(saved_np)
        torch.set_rng_state(saved_cpu)
        if cuda:
            torch.cuda.set_rng_state_all(saved_cuda)
