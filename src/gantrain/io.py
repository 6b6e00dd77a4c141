"""Files that are never half written, and the one keyed on-disk cache every expensive artefact goes through.

Checkpoints, metric reports, reference statistics, metric classifiers and generated or decoded datasets are all
written here: to a temporary file in the same folder, then renamed over the target, so a reader (or a run that
crashed mid-write) sees either the old file or the new one. Cached artefacts are named by a hash of everything
that changes them, so a changed setting builds a new file instead of silently reusing an old one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from gantrain.errors import GantrainError

log = logging.getLogger(__name__)

T = TypeVar("T")

def save_atomic(obj: Any, path: Path) -> None:
    """`torch.save` to a temporary file in the same folder, flush and fsync, then rename over `path`.

    A write that fails half way (disk full, quota, I/O error) removes the temporary file and leaves every
    existing file, `last.pt` included, as it was; the error says so in one line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise GantrainError(
            f"writing {path} failed ({exc.strerror or exc}); the files already in {path.parent} are intact: "
            f"free disk space (or fix permissions) and resume from them"
        ) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(obj: Any, path: Path) -> None:
    """Write `obj` as indented JSON via a temporary file and a rename (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: DDP ranks may write the same cache file
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def link_atomic(src: Path, dst: Path) -> None:
    """Point `dst` at `src`'s content atomically (hard link, or a copy where links are unsupported)."""
    tmp = dst.with_name(f".{dst.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def cache_folder(configured: str | None, default: str) -> Path:
    """`configured` (a user setting such as `eval.reference_cache`), else `~/.cache/gantrain/<default>`."""
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "gantrain" / default


def key_digest(key: dict[str, Any]) -> str:
    """16 hex digits of sha256 over `key` as sorted JSON: the part of a cache name that any setting changes."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_path(folder: Path, prefix: str, key: dict[str, Any]) -> Path:
    """`folder/<prefix>-<key_digest(key)>.pt`: where the artefact built under `key` lives."""
    return folder / f"{prefix}-{key_digest(key)}.pt"


def load_or_build(path: Path, build: Callable[[], Any], read: Callable[[Any], T] = lambda blob: blob) -> T:
    """`read(blob)` of the blob stored at `path`; when it is absent or unreadable, `build()` it, save it
    atomically there and `read` that.

    Blobs are loaded with `weights_only=True` (a cache file never runs code). A broken file (truncated, from an
    older layout, weights that no longer fit) is rebuilt with a warning, never fatal: it only costs the time to
    build it again."""
    if path.is_file():
        try:
            return read(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as exc:  # noqa: BLE001 - any unreadable cache file means "build it again"
            log.warning("cache file %s unreadable (%s); building it again", path, exc)
    blob = build()
    save_atomic(blob, path)
    return read(blob)
