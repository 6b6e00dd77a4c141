"""What every command shares: one-line errors, logging set-up, loading a trained model from a run."""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import OmegaConf

from gantrain.errors import GantrainError

log = logging.getLogger("gantrain")


def fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn GantrainError into `error: ...` on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GantrainError as exc:
            fail(str(exc))

    return wrapper


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")


def load_trained(target: str, device: str = "auto", prefer_ema: bool = True):
    """(model, nets-for-sampling, checkpoint) from a run directory or checkpoint file."""
    from gantrain.config.schema import validate_config
    from gantrain.data.base import DataInfo
    from gantrain.trainer.checkpoint import load_newest_valid
    from gantrain.trainer.runtime import Runtime, resolve_device
    from gantrain.trainer.trainer import build_model

    path, ckpt = load_newest_valid(Path(target))
    cfg = validate_config(OmegaConf.create(ckpt["config"]))
    dev = resolve_device(device)
    info = DataInfo.from_dict(ckpt["data_info"])
    model = build_model(cfg, info)
    for name, net in model.nets.items():
        net.load_state_dict(ckpt["nets"][name])
    model.load_extra_state(ckpt.get("extra", {}))
    model.attach(Runtime(dev, "32"))
    model.nets.eval()
    nets = None
    if prefer_ema and ckpt.get("ema"):
        import copy

        nets = torch.nn.ModuleDict({k: copy.deepcopy(v) for k, v in model.nets.items()})
        for name, sd in ckpt["ema"].items():
            nets[name].load_state_dict(sd)
        nets.eval()
    log.info("loaded %s (step %d)", path, ckpt["step"])
    return model, nets, ckpt, path
