"""Data-parallel training under torchrun (`torch.distributed`): rank facts, parameter sync and reductions.

Every rank starts from rank 0's weights; after each backward the gradients of the stepped optimiser are
averaged across ranks (the all-reduce DDP performs), so all ranks stay bit-identical whichever nets a family
freezes or reuses within a step. Rank 0 alone writes checkpoints, logs and samples.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn


@dataclass
class DistEnv:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "DistEnv":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        env = cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
        return env

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1 and dist.is_initialized()

    def device(self, device: torch.device) -> torch.device:
        if device.type == "cuda" and self.world > 1:
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return device

    def wrap(self, model: Any) -> None:
        """Give every rank rank 0's weights and buffers, and make the runtime average gradients."""
        if not self.active:
            return
        for net in model.nets.values():
            for t in list(net.parameters()) + list(net.buffers()):
                dist.broadcast(t.data, src=0)
        model.rt.grad_sync = self.average_gradients

    def average_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    @staticmethod
    def unwrap(net: nn.Module) -> nn.Module:
        return getattr(net, "module", net)

    def set_epoch(self, epoch: int) -> None:
        """Batch order is a pure function of (seed, epoch, rank): nothing to tell a sampler."""

    def all_reduce_mean(self, t: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return t
        t = t.clone()
        dist.all_reduce(t)
        return t / self.world

    def broadcast_object(self, obj: Any) -> Any:
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()
