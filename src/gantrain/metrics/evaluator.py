"""The `Evaluator`: builds the configured metrics once, before training, and runs them at each evaluation.

The metrics themselves register in `metrics.base.METRICS` from their own modules (the contract is in
metrics/base.py); importing this module imports every module of the `gantrain.metrics` package, so a new
metric module is found without editing anything here. Which metrics run: `eval.metrics` when set, else the
family's `default_metrics`, plus the data's `eval.data_metrics`; each is checked against the model and data
first, so one that cannot score the run stops it in one line before its first step.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import time
from typing import Any

import numpy as np
import torch

import gantrain.metrics
from gantrain.data.base import DataSource
from gantrain.errors import GantrainError
from gantrain.metrics.backbones import BACKBONES
from gantrain.metrics.base import METRICS, EvalContext, EvalSetup, Metric

log = logging.getLogger(__name__)



def _import_metric_modules() -> None:
    """Import every module of the package: each registers its metrics, so none is listed here."""
    for module in pkgutil.iter_modules(gantrain.metrics.__path__):
        if module.name != "evaluator":
            importlib.import_module(f"gantrain.metrics.{module.name}")


_import_metric_modules()


def metric_names(cfg, model) -> list[str]:
    """The metrics a run computes: `eval.metrics` (the family's `default_metrics` when null) and, when there
    are any, the data's `eval.data_metrics`; [] turns evaluation off."""
    chosen = cfg.eval.metrics if cfg.eval.metrics is not None else model.default_metrics
    return list(dict.fromkeys([*chosen, *cfg.eval.data_metrics])) if chosen else []


class Evaluator:
    """Checks and builds the metrics once, for one model, and runs them on one shared generated batch per evaluation."""

    def __init__(self, cfg, data: DataSource, model: Any, device: torch.device) -> None:
        names = metric_names(cfg, model)
        unknown = [m for m in names if m not in METRICS]
        if unknown:
            raise GantrainError(f"unknown eval.metrics {unknown}; choose from: {', '.join(sorted(METRICS))}")
        if cfg.eval.backbone not in BACKBONES:
            raise GantrainError(f"unknown eval.backbone {cfg.eval.backbone!r}; choose from: {', '.join(sorted(BACKBONES))}")
        self.cfg = cfg
        self.setup = EvalSetup(cfg, data, model, device)
        for name in names:  # all checks before any metric builds feature nets or references
            METRICS[name].check(self.setup)
        self.metrics: dict[str, Metric] = {name: METRICS[name](self.setup) for name in names}
        self.protocol: dict[str, Any] = {}

    def __call__(self, nets: torch.nn.ModuleDict | None, step: int) -> dict[str, float]:
        """Every metric on `nets` (EMA copies, or None for the model's live nets); records the protocol."""
        start = time.perf_counter()
        ctx = EvalContext(self.setup, nets=nets, step=step)
        results: dict[str, float] = {}
        for name, metric in self.metrics.items():
            out = metric(ctx)
            results.update({k: float(v) for k, v in out.items()})
            if metric.protocol:
                ctx.protocol[name] = metric.protocol
        fake = ctx._fake
        e = self.cfg.eval
        self.protocol = {
            "step": step,
            "seed": e.seed,
            "num_fake": 0 if fake is None else int(len(fake[0])),
            "sampling_nets": "ema" if nets is not None else "live",
            "library": _library_versions(),
            "metrics": ctx.protocol,
            "seconds": round(time.perf_counter() - start, 3),
        }
        log.info("step %d eval (%.1f s): %s", step, self.protocol["seconds"], ", ".join(f"{k}={v:.4g}" for k, v in results.items()))
        return results


def _library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"torch": torch.__version__, "numpy": np.__version__}
    for dist in ("torch-fidelity", "scipy", "gantrain"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return out
