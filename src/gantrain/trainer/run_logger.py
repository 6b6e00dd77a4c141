"""Where a run's numbers and pictures go: TensorBoard, `metrics.jsonl` and the `samples/` folder."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torchvision.utils import make_grid, save_image

log = logging.getLogger(__name__)


def flatten_config(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"optim.lr": 0.0002, ...} with values TensorBoard's hparams plugin accepts."""
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_config(value, name + "."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif value is None:
            flat[name] = "null"
        else:
            flat[name] = str(value)
    return flat


class RunLogger:
    def __init__(self, run_dir: Path, tensorboard: bool = True, jsonl: bool = True, enabled: bool = True,
                 hparams: bool = True) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self.write_hparams = hparams  # logger.hparams: the config + final metrics as a TensorBoard hparams session
        self.samples_dir = run_dir / "samples"
        self.writer = None
        self.jsonl = None
        if not enabled:
            return
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        if jsonl:
            self.jsonl = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(name, value, step)
        if self.jsonl is not None:
            self.jsonl.write(json.dumps({"step": step, **values}) + "\n")
            self.jsonl.flush()

    def images(self, step: int, grids: dict[str, torch.Tensor], nrow: int | None = None) -> None:
        if not self.enabled:
            return
        for name, batch in grids.items():
            batch = batch.detach().float().cpu().clamp(-1, 1).add(1).div(2)
            rows = nrow or max(int(len(batch) ** 0.5), 1)
            grid = make_grid(batch, nrow=rows, padding=2, pad_value=1.0)
            save_image(grid, self.samples_dir / f"{name.replace('/', '_')}_step_{step:07d}.png")
            if self.writer is not None:
                self.writer.add_image(f"samples/{name}", grid, step)

    def hparams(self, config: dict[str, Any], metrics: dict[str, float]) -> None:
        if not self.enabled or self.writer is None or not self.write_hparams:
            return
        hparams = {k: v for k, v in flatten_config(config).items() if not k.startswith("hydra.")}
        final = {f"hparam/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        self.writer.add_hparams(hparams, final or {"hparam/none": 0.0}, run_name=".")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.jsonl is not None:
            self.jsonl.close()
