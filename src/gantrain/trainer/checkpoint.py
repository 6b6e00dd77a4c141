"""Checkpoint files: written atomically, read with `weights_only=True`, found again after a crash.

One file holds everything needed to continue exactly (see `Trainer.state_dict`). `last.pt` is a hard link to
the newest `step_NNNNNNN.pt` snapshot, so keeping both costs no extra disk or time.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from gantrain.errors import GantrainError

log = logging.getLogger(__name__)

FORMAT = "gantrain-checkpoint/1"
SNAPSHOT = re.compile(r"step_(\d{7,})\.pt$")


def snapshot_name(step: int) -> str:
    return f"step_{step:07d}.pt"


def save_atomic(obj: Any, path: Path) -> None:
    """Write to a temporary file in the same folder, flush and fsync, then rename over `path`.

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
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def link_atomic(src: Path, dst: Path) -> None:
    """Point `dst` at `src`'s content atomically (hard link, or a copy where links are unsupported)."""
    tmp = dst.with_name(f".{dst.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        import shutil

        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def snapshots(folder: Path) -> list[Path]:
    """Numbered snapshots, newest first."""
    found = [(int(m.group(1)), p) for p in folder.glob("step_*.pt") if (m := SNAPSHOT.search(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def prune(folder: Path, keep_last: int, protect: set[Path] | None = None) -> None:
    protect = {p.resolve() for p in (protect or set())}
    for old in snapshots(folder)[max(keep_last, 1):]:
        if old.resolve() not in protect:
            old.unlink(missing_ok=True)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and sanity-check one checkpoint; never executes code from the file."""
    if not path.is_file():
        raise GantrainError(f"checkpoint {path} does not exist; pass a checkpoint file or a run directory")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, disallowed globals: all mean "not loadable"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GantrainError(f"checkpoint {path} cannot be read ({reason[:160]}); it may be truncated or not a gantrain checkpoint") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise GantrainError(f"{path} is not a gantrain checkpoint (no '{FORMAT}' marker)")
    return ckpt


def candidate_checkpoints(target: Path) -> list[Path]:
    """A file is its own candidate; a run directory offers last.pt, then its snapshots newest first."""
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise GantrainError(f"resume={target} does not exist; pass a checkpoint file or a run directory")
    folder = target / "checkpoints" if (target / "checkpoints").is_dir() else target
    found = ([folder / "last.pt"] if (folder / "last.pt").is_file() else []) + snapshots(folder)
    if not found:
        raise GantrainError(f"no checkpoints in {folder}; a run writes them every trainer.ckpt_every steps")
    return found


def load_newest_valid(target: Path, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]]:
    """Load the newest readable checkpoint; with a run directory, fall back past broken files and say so."""
    candidates = candidate_checkpoints(target)
    errors = []
    for path in candidates:
        try:
            ckpt = load_checkpoint(path, map_location)
        except GantrainError as exc:
            if len(candidates) == 1:
                raise
            errors.append(str(exc))
            log.warning("skipping %s: %s", path.name, exc)
            continue
        if errors:
            log.warning("resuming from %s (newest valid checkpoint; %d newer file(s) unreadable)", path, len(errors))
        return path, ckpt
    raise GantrainError(f"no readable checkpoint in {target}: {errors[0]}")


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint belongs to (its parent's parent when it sits in `checkpoints/`)."""
    folder = checkpoint.parent
    return folder.parent if folder.name == "checkpoints" else folder
