"""The training state: where the run stands (`Progress`) and everything a checkpoint holds to continue exactly
(`TrainingState`: nets, EMA, optimisers, schedules, scalers, RNG, family state, per rank under torchrun)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import gantrain
from gantrain.data.base import DataInfo
from gantrain.models.base import GANModel
from gantrain.rng import rng_state, set_rng_state
from gantrain.runs import FORMAT, load_nets
from gantrain.runtime import Runtime
from gantrain.trainer.checkpointing import KeepBest
from gantrain.trainer.distributed import DistEnv
from gantrain.trainer.ema import EMA

log = logging.getLogger("gantrain")


@dataclass
class Progress:
    """Where the run stands; a checkpoint restores it and every step advances it."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` done: equals the epoch's length between its last step and the next
    images_seen: int = 0

    def advance(self, epoch: int, index: int, images: int) -> None:
        """Count one step on batch `index` of `epoch` covering `images` images (all ranks together)."""
        self.step += 1
        self.epoch, self.batch_in_epoch = epoch, index + 1
        self.images_seen += images


@dataclass
class TrainingState:
    """The pieces a checkpoint captures. `state_dict` only reads them: a caller that wants the EMA nets'
    batch-norm statistics refreshed in the file does so first (see `Trainer.refresh_ema`)."""

    cfg: DictConfig
    info: DataInfo
    model: GANModel
    schedulers: dict[str, Any]
    ema: EMA | None
    rt: Runtime
    dist: DistEnv
    best: KeepBest
    progress: Progress = field(default_factory=Progress)

    def gather_rank_state(self) -> dict[str, list[Any]] | None:
        """Collective: every rank's RNG state and family extra state (None in a single process)."""
        if self.dist.world == 1:
            return None
        states = self.dist.gather_object({"rng": rng_state(), "extra": self.model.extra_state()})
        return {"rng": [s["rng"] for s in states], "extra": [s["extra"] for s in states]}

    def state_dict(self, per_rank: dict[str, list[Any]] | None = None) -> dict[str, Any]:
        """Everything needed to continue exactly, in types `torch.load(weights_only=True)` accepts.

        `per_rank` (from `gather_rank_state`, under torchrun) adds every rank's RNG and family state, so each
        rank resumes its own random stream and image pool; `rng`/`extra` stay rank 0's.
        """
        p = self.progress
        return {
            "format": FORMAT,
            "gantrain_version": gantrain.__version__,
            "model_name": self.cfg.model.name,
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "data_info": self.info.to_dict(),
            "step": p.step,
            "epoch": p.epoch,
            "batch_in_epoch": p.batch_in_epoch,
            "images_seen": p.images_seen,
            "world_size": self.dist.world,
            "nets": {name: self.dist.unwrap(net).state_dict() for name, net in self.model.nets.items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizers": {n: o.state_dict() for n, o in self.model.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "scalers": self.rt.state_dict(),
            "rng": rng_state(),
            "extra": self.model.extra_state(),
            "best": dict(self.best.best),
            "per_rank": per_rank,
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        """Resume from `ckpt`: refuses a checkpoint of another model or architecture in one line."""
        load_nets(self.model, ckpt)
        for name, opt in self.model.optimizers.items():
            opt.load_state_dict(keep_kernel_flags(opt, ckpt["optimizers"][name]))
        for name, sched in self.schedulers.items():
            sched.load_state_dict(ckpt["schedulers"][name])
        if self.ema is not None and ckpt.get("ema"):
            self.ema.load_state_dict(ckpt["ema"])
        self.rt.load_state_dict(ckpt.get("scalers", {}))
        same_world = ckpt.get("world_size", 1) == self.dist.world
        per_rank = ckpt.get("per_rank") if same_world else None
        self.model.load_extra_state(per_rank["extra"][self.dist.rank] if per_rank else ckpt.get("extra", {}))
        p = self.progress
        p.step, p.epoch, p.batch_in_epoch, p.images_seen = ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"], ckpt.get("images_seen", 0)
        self.best.best = ckpt.get("best", self.best.best)
        if same_world:
            set_rng_state(per_rank["rng"][self.dist.rank] if per_rank else ckpt["rng"])
        else:
            log.warning("checkpoint was written with %s ranks, now %s: RNG streams restart", ckpt.get("world_size"), self.dist.world)


def keep_kernel_flags(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's optimiser state with this run's kernel choices (fused, foreach, capturable): a CPU
    checkpoint resumed on CUDA keeps fused Adam, and torch then places the step counters to match."""
    flags = ("fused", "foreach", "capturable")
    groups = [{**saved, **{k: live[k] for k in flags if k in live}} for saved, live in zip(state["param_groups"], optimizer.param_groups)]
    return {**state, "param_groups": groups}
