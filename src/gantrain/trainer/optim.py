"""Optimisers and learning-rate schedules built from the `optim` config group.

Schedules are functions of the global step, so resuming mid-epoch lands on exactly the same learning rate.
`rmsprop_tf` is RMSProp as TensorFlow 1 defines it (what TF-trained papers such as DualGAN ran); `rmsprop` is torch's.
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
        return torch.optim.RMSprop(params, lr=lr, alpha=cfg.rho, eps=cfg.eps, weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    if cfg.name == "rmsprop_tf":
        return RMSpropTF(params, lr=lr, rho=cfg.rho, eps=cfg.eps, weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    raise GantrainError(f"unknown optim.name {cfg.name!r}; choose one of: adam, adamw, rmsprop, rmsprop_tf, sgd")


class RMSpropTF(torch.optim.Optimizer):
    """RMSProp as TensorFlow 1's `tf.train.RMSPropOptimizer` (kernel ApplyRMSProp) computes it, which torch's RMSprop
    does not: the mean square starts at ONE (not zero, so the first steps are not lr * sign(g)-sized), eps is added
    inside the square root, and the learning rate enters the momentum buffer:
        ms = rho * ms + (1 - rho) * g^2;  mom = momentum * mom + lr * g / sqrt(ms + eps);  p -= mom.
    `weight_decay` adds weight_decay * p to g first (L2, as torch's RMSprop). With momentum 0 no buffer is kept and
    p -= lr * g / sqrt(ms + eps) (TF's result); a buffer made when momentum later turns positive starts at zero."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float, rho: float = 0.9, eps: float = 1e-10,
                 weight_decay: float = 0.0, momentum: float = 0.0) -> None:
        if not 0.0 <= rho < 1.0:
            raise GantrainError(f"optim.rho must be in [0, 1), got {rho}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, momentum=momentum))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's Optimizer signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._update(group, params)
        return loss

    def _update(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        """One step of every parameter of a group with torch's multi-tensor (_foreach) kernels."""
        grads = [p.grad for p in params]
        if group["weight_decay"]:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        for p in params:
            if "square_avg" not in self.state[p]:
                self.state[p]["square_avg"] = torch.ones_like(p, memory_format=torch.preserve_format)
        square = [self.state[p]["square_avg"] for p in params]
        torch._foreach_mul_(square, group["rho"])
        torch._foreach_addcmul_(square, grads, grads, value=1 - group["rho"])
        denom = torch._foreach_add(square, group["eps"])
        torch._foreach_sqrt_(denom)
        if group["momentum"] > 0 or "momentum_buffer" in self.state[params[0]]:
            for p in params:
                self.state[p].setdefault("momentum_buffer", torch.zeros_like(p, memory_format=torch.preserve_format))
            bufs = [self.state[p]["momentum_buffer"] for p in params]
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_addcdiv_(bufs, grads, denom, value=group["lr"])
            torch._foreach_sub_(params, bufs)
        else:
            torch._foreach_addcdiv_(params, grads, denom, value=-group["lr"])


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
