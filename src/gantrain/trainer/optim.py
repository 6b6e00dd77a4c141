"""Optimisers and learning-rate schedules built from the `optim` config group.

Schedules are functions of the global step, so resuming mid-epoch lands on exactly the same learning rate.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch
import torch.nn as nn
from torch.optim.lr_scheduler import LambdaLR

from gantrain.errors import GantrainError


def build_optimizer(name: str, params: Iterable[nn.Parameter], cfg: Any, device: torch.device) -> torch.optim.Optimizer:
    """`name` is the family's optimiser key (G, D, E, ...); names starting with D use `optim.lr_D` when set."""
    lr = cfg.lr_D if (name.startswith("D") and cfg.lr_D is not None) else cfg.lr
    params = [p for p in params if p.requires_grad]
    fused = cfg.fused if cfg.fused is not None else device.type == "cuda"
    extra = {"fused": True} if fused and device.type == "cuda" else {}
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay, **extra)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay, **extra)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, eps=cfg.eps, weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    raise GantrainError(f"unknown optim.name {cfg.name!r}; choose one of: adam, adamw, rmsprop, sgd")


def _decay_window(cfg: Any, total_steps: int, steps_per_epoch: int) -> tuple[int, int]:
    """(first decaying step, decay length in steps): the last decay_steps / decay_epochs of the run, or all of it."""
    if cfg.decay_steps is not None:
        decay = cfg.decay_steps
    elif cfg.decay_epochs is not None:
        decay = cfg.decay_epochs * steps_per_epoch
    else:
        decay = total_steps
    return max(total_steps - decay, 0), decay


def lr_factor(cfg: Any, total_steps: int, steps_per_epoch: int):
    """The multiplier of the base learning rate at a given step."""
    kind = cfg.schedule
    if kind == "constant":
        return lambda step: 1.0
    if kind == "linear_decay":
        start, decay = _decay_window(cfg, total_steps, steps_per_epoch)
        span = max(decay, 1)
        # CycleGAN convention: full lr for the first epochs, then linearly to zero at the last step.
        return lambda step: 1.0 - max(0, step - start) / span
    if kind == "epoch_linear":
        # The CycleGAN/pix2pix reference rule (networks.get_scheduler, stepped once per epoch): epoch e (from 0)
        # runs at 1 - max(0, e + 1 - n_const) / (n_decay + 1), so the last epoch has lr / (n_decay + 1), not 0.
        epochs = max(total_steps // max(steps_per_epoch, 1), 1)
        n_decay = cfg.decay_epochs if cfg.decay_epochs is not None else epochs
        n_const = epochs - n_decay
        return lambda step: 1.0 - max(0, step // steps_per_epoch + 1 - n_const) / (n_decay + 1)
    if kind == "cosine":
        return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
    if kind == "step":
        every = max(cfg.step_epochs * steps_per_epoch, 1)
        return lambda step: cfg.gamma ** (step // every)
    if kind == "exponential":
        # constant, then exponential to final_lr_ratio over the last decay_epochs/decay_steps (null: the whole run)
        start, decay = _decay_window(cfg, total_steps, steps_per_epoch)
        return lambda step: cfg.final_lr_ratio ** (min(max(step - start, 0), decay) / max(decay, 1))
    if kind == "exponential_step":
        # pylearn2's ExponentialDecay (Mirza & Osindero 2014): times gamma every update, floored at final_lr_ratio
        return lambda step: max(cfg.gamma**step, cfg.final_lr_ratio)
    raise GantrainError(
        f"unknown optim.schedule {kind!r}; choose one of: constant, linear_decay, epoch_linear, cosine, step, exponential, "
        f"exponential_step"
    )


def momentum_at(cfg: Any, epoch: int) -> float:
    """`optim.momentum` until epoch `momentum_start`, then linearly to `momentum_final` at `momentum_saturate`
    (pylearn2's MomentumAdjustor, as Goodfellow et al. 2014 train the MNIST GAN); constant when momentum_final is null."""
    if cfg.momentum_final is None:
        return cfg.momentum
    span = max(cfg.momentum_saturate - cfg.momentum_start, 1)
    alpha = min(max((epoch - cfg.momentum_start) / span, 0.0), 1.0)
    return cfg.momentum * (1 - alpha) + cfg.momentum_final * alpha


class Schedule(LambdaLR):
    """The learning-rate multiplier of `lr_factor` per step, plus the momentum schedule of `momentum_at` for optimisers
    with a momentum (SGD, RMSProp); both are functions of the step, so a resumed run lands on the same values."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: Any, total_steps: int, steps_per_epoch: int) -> None:
        self._cfg, self._steps_per_epoch = cfg, max(steps_per_epoch, 1)
        super().__init__(optimizer, lr_factor(cfg, total_steps, steps_per_epoch))

    def state_dict(self) -> dict[str, Any]:
        """LambdaLR's state without the config (checkpoints hold plain types; the config comes with the run)."""
        return {k: v for k, v in super().state_dict().items() if k not in ("_cfg", "_steps_per_epoch")}

    def step(self, epoch: int | None = None) -> None:
        super().step(epoch)
        if self._cfg.momentum_final is not None:
            momentum = momentum_at(self._cfg, self.last_epoch // self._steps_per_epoch)
            for group in self.optimizer.param_groups:
                if "momentum" in group:
                    group["momentum"] = momentum


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Any, total_steps: int, steps_per_epoch: int) -> LambdaLR:
    return Schedule(optimizer, cfg, total_steps, steps_per_epoch)
