"""Folder datasets at any scale: choose how to hold the train split (`data.cache`), and read files on demand.

- `resolve_cache` turns `data.cache=auto` into device | host | stream from an estimate made before decoding
  anything (file count x decoded size) against `data.cache_budget_gb` (default: 40% of free device memory,
  50% of available host memory), and logs the choice and why.
- `FileRows` is a uint8 image store that decodes rows from files when gathered (in DataLoader workers), so
  the same split classes and the same per-item key draws serve in-memory and streamed training.
- `check_headers` is the listing-time check of stream mode: files whose first bytes are not an image are
  dropped and counted, the same rule the in-memory path applies by failing to decode them. A file that passes
  but fails to decode later (truncated) is replaced, at read time, by the next readable file in the list
  (keeping that item's key), and counted in the log: no crash mid-run, and no other item changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from gantrain.errors import GantrainError
from gantrain.io import cache_folder, write_json_atomic

log = logging.getLogger(__name__)

CACHE_MODES = ("auto", "device", "host", "stream")
DEVICE_FRACTION, HOST_FRACTION = 0.4, 0.5
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"GIF8", b"II*\x00", b"MM\x00*", b"P1", b"P2", b"P3", b"P4",
          b"P5", b"P6")
_replaced = [0]  # files replaced at read time in this process (see FileRows)


def replaced_count() -> int:
    return _replaced[0]


def host_available() -> int:
    """Bytes of host memory available to a new allocation (MemAvailable; free pages where that is missing)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def budgets(device: torch.device, budget_gb: Optional[float]) -> tuple[int, int, str]:
    """(device bytes, host bytes, where they come from): the caps `auto` compares the decoded size against."""
    if budget_gb is not None:
        b = int(float(budget_gb) * 2**30)
        return b, b, f"data.cache_budget_gb={budget_gb}"
    host = int(host_available() * HOST_FRACTION)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * DEVICE_FRACTION), host, f"{DEVICE_FRACTION:.0%} of free {device} memory, {HOST_FRACTION:.0%} of available host memory"
    return host, host, f"{HOST_FRACTION:.0%} of available host memory"


def resolve_cache(mode: str, need: int, device: torch.device, budget_gb: Optional[float], what: str) -> str:
    """device | host | stream for a train split of `need` decoded bytes; `auto` picks the first that fits."""
    if mode not in CACHE_MODES:
        raise GantrainError(f"data.cache={mode} is not valid; choose one of: {', '.join(CACHE_MODES)}")
    gb = need / 2**30
    if mode != "auto":
        log.info("data.cache=%s for %s (decoded train split ~%.2f GB)", mode, what, gb)
        return mode
    dev_b, host_b, source = budgets(device, budget_gb)
    if need <= dev_b:
        choice, why = "device", f"fits the device budget of {dev_b / 2**30:.2f} GB"
    elif device.type != "cpu" and need <= host_b:
        choice, why = "host", f"over the device budget of {dev_b / 2**30:.2f} GB, within the host budget of {host_b / 2**30:.2f} GB"
    else:
        choice, why = "stream", f"over the budget of {max(dev_b, host_b) / 2**30:.2f} GB"
    log.info("data.cache=auto chose %s for %s: the decoded train split is ~%.2f GB, %s (%s)", choice, what, gb, why, source)
    return choice


def _header_ok(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def check_headers(paths: list[Path], where: str) -> list[Path]:
    """The files whose first bytes are an image header; the result is cached under the data cache, keyed by
    the listing (names, sizes, modification times), so a restart reads no file twice."""
    stats = []
    for p in paths:
        try:
            st = p.stat()
            stats.append((str(p), st.st_size, st.st_mtime_ns))
        except OSError:  # gone since the run listed it: read as unreadable below
            stats.append((str(p), -1, -1))
    digest = hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:20]
    cache = cache_folder(None, "data/listings") / f"{digest}.json"
    bad: set[str] | None = None
    if cache.is_file():
        try:
            bad = set(json.loads(cache.read_text())["bad"])
        except (OSError, ValueError, KeyError):
            bad = None
    if bad is None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            ok = list(pool.map(_header_ok, paths))
        bad = {str(p) for p, good in zip(paths, ok) if not good}
        write_json_atomic({"bad": sorted(bad)}, cache)
    if bad:
        log.warning("%s: skipped %d unreadable image(s) of %d (not an image header)", where, len(bad), len(paths))
    kept = [p for p in paths if str(p) not in bad]
    if not kept:
        raise GantrainError(f"{where}: none of its {len(paths)} image(s) could be read; check the files")
    return kept


class FileRows:
    """A uint8 (N, C, H, W) image store whose rows are decoded from files when gathered.

    `items` are what `decode` reads (a path, or a pair of paths); `decode(item)` returns a (C, H, W) uint8
    tensor or raises. A row that fails (or decodes to a size other than `shape`) is replaced by the next
    readable row, counted in `replaced_count`.
    """

    dtype = torch.uint8
    device = torch.device("cpu")

    def __init__(self, items: list[Any], decode: Callable[[Any], torch.Tensor], shape: tuple[int, int, int, int]) -> None:
        self.items, self.decode, self.shape = items, decode, shape

    def __len__(self) -> int:
        return len(self.items)

    def _read(self, i: int) -> torch.Tensor:
        n = len(self.items)
        for step in range(n):
            item = self.items[(i + step) % n]
            try:
                x = self.decode(item)
            except (OSError, ValueError, SyntaxError, RuntimeError, GantrainError) as exc:
                log.warning("skipping unreadable image %s (%s); using the next file in its place", item, exc)
            else:
                if tuple(x.shape) == tuple(self.shape[1:]):
                    _replaced[0] += step
                    return x
                log.warning("skipping %s: %s after preprocessing, not %s like the others", item, tuple(x.shape), self.shape[1:])
        raise GantrainError(f"none of the {n} files from {self.items[0]} on could be read; check the files")

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._read(i) for i in index.tolist()])
