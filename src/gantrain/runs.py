"""A run on disk: the checkpoint format, finding the newest valid checkpoint, and building what a run trained.

One file holds everything needed to continue exactly (see `Trainer.state_dict`). `last.pt` is a hard link to
the newest `step_NNNNNNN.pt` snapshot, so keeping both costs no extra disk or time. Checkpoints are read with
`weights_only=True`, so loading one never executes code from it.

This module sits below the families and datasets it builds: it names their classes by the `_target_` strings
of the config (`config.schema.resolve_target`), never by a static import, so the trainer, every command and
`model=latent_encoder` share one loader without an import running back up the layers.
"""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from gantrain.config.schema import resolve_target, validate_config
from gantrain.errors import GantrainError
from gantrain.runtime import Runtime, resolve_device

log = logging.getLogger(__name__)

FORMAT = "gantrain-checkpoint/1"
SNAPSHOT = re.compile(r"step_(\d{7,})\.pt$")
DATA_INFO = "gantrain.data.base.DataInfo"  # what a checkpoint's `data_info` is rebuilt as


def snapshot_name(step: int) -> str:
    return f"step_{step:07d}.pt"


def snapshots(folder: Path) -> list[Path]:
    """Numbered snapshots, newest first."""
    found = [(int(m.group(1)), p) for p in folder.glob("step_*.pt") if (m := SNAPSHOT.search(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def prune(folder: Path, keep_last: int, protect: set[Path] | None = None) -> None:
    """Delete all but the newest `keep_last` snapshots (at least one), never a file in `protect` (best.pt)."""
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


def build_model(cfg: DictConfig, info: Any) -> Any:
    """The family `cfg.model._target_` names (a `GANModel`), built for the data described by `info` (a `DataInfo`)."""
    return resolve_target(cfg.model._target_)(cfg.model, info)


def build_data(cfg: DictConfig, device: torch.device | None = None, listing: Any = None) -> Any:
    """The dataset `cfg.data._target_` names (a `DataSource`), seeded by `cfg.seed`, on `device` when given;
    folder sources take their file lists from `listing` (a `gantrain.data.listing.FolderListing`, typically the
    run's stored one) where it has them."""
    data = resolve_target(cfg.data._target_)(cfg.data, seed=cfg.seed, listing=listing)
    return data.on_device(device) if device is not None else data


def load_nets(model: Any, ckpt: dict[str, Any]) -> None:
    """Check that `ckpt` was written by `model`'s family and load its weights into `model.nets`, with one-line
    errors naming the mismatch (the trainer's resume and `load_trained` both go through here)."""
    if ckpt["model_name"] != model.cfg.name:
        raise GantrainError(
            f"the checkpoint is from model={ckpt['model_name']} but this run is model={model.cfg.name}; "
            f"pass model={ckpt['model_name']} or another checkpoint"
        )
    for name, net in model.nets.items():
        if name not in ckpt["nets"]:
            raise GantrainError(f"the checkpoint has no network {name!r}; it was written by another model configuration")
        differ = "the architecture settings differ from the run that wrote it"
        try:
            missing, unexpected = net.load_state_dict(ckpt["nets"][name], strict=False)
        except RuntimeError as exc:  # the same keys with other shapes: a width or size setting changed
            lines = [line.strip() for line in str(exc).splitlines()]
            detail = next((line for line in lines if line.startswith("size mismatch")), lines[0])
            raise GantrainError(f"network {name} does not match the checkpoint ({detail[:200]}); {differ}") from None
        if missing or unexpected:
            raise GantrainError(
                f"network {name} does not match the checkpoint (missing keys: {list(missing)[:3]}, unexpected: "
                f"{list(unexpected)[:3]}); {differ}"
            )


class Trained(NamedTuple):
    """A trained model ready to sample: the family (nets in eval mode on the device), its EMA generators
    when asked for and kept (None otherwise), the checkpoint and the file it came from."""

    model: Any
    nets: nn.ModuleDict | None
    ckpt: dict[str, Any]
    path: Path


def load_trained(target: str | Path, device: str = "auto", prefer_ema: bool = True) -> Trained:
    """The model a run trained, from a run directory (its newest valid checkpoint) or a checkpoint file.

    Architecture and data description come from the checkpoint alone, so the run's data need not be present."""
    path, ckpt = load_newest_valid(Path(target).expanduser())
    cfg = validate_config(OmegaConf.create(ckpt["config"]))
    runtime = Runtime(resolve_device(device), "32")
    model = build_model(cfg, resolve_target(DATA_INFO).from_dict(ckpt["data_info"]))
    load_nets(model, ckpt)
    model.load_extra_state(ckpt.get("extra", {}))
    model.attach(runtime)
    model.nets.eval()
    nets = None
    if prefer_ema and ckpt.get("ema"):
        nets = nn.ModuleDict({k: copy.deepcopy(v) for k, v in model.nets.items()})
        for name, sd in ckpt["ema"].items():
            nets[name].load_state_dict(sd)
        nets.eval()
    log.info("loaded %s (step %d)", path, ckpt["step"])
    return Trained(model, nets, ckpt, path)
