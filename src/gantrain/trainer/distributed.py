"""Data-parallel training under torchrun or SLURM (`torch.distributed`): rank facts, weight sync, reductions.

This is what `DistributedDataParallel` does, done at the one place every family already goes through
(`Runtime.update`) instead of inside a module wrapper:
- every rank starts from rank 0's weights and buffers (DDP's constructor broadcast);
- after each backward, the gradients of the optimiser about to step are averaged across ranks in one
  coalesced all-reduce per dtype (DDP's reducer), so all ranks stay bit-identical;
- after each batch, rank 0's buffers (BatchNorm running statistics, spectral-norm vectors) are broadcast
  (DDP's `broadcast_buffers=True`), so sampling, EMA and checkpoints are the same on every rank.

Why not wrap the nets in DDP: a GAN step freezes D while G's loss backpropagates through it, runs D
several times before one backward (real, fake, gradient-penalty double backward through
`autograd.grad`), shares layers between nets (CoGAN, UNIT) and calls methods other than `forward`
(encoders, decoders). DDP's reducer expects one forward and one backward per wrapped module with a fixed
set of parameters receiving gradients, and only syncs parameters used through `forward`; each of these
patterns either errors, deadlocks or silently skips the sync. Averaging per optimiser step is the same
arithmetic with none of those assumptions, so every family runs unchanged. What it gives up is the
overlap of the all-reduce with the backward pass; GAN nets are small and the reduction is one call.

Rank 0 alone writes checkpoints, logs and samples; checkpoints carry every rank's RNG and family state.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
import torch.distributed as dist
import torch.nn as nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from gantrain.errors import GantrainError


def _export_submitit_env() -> None:
    """Inside a Hydra submitit (SLURM) job every task runs the training function: derive the torch.distributed
    variables (rank, world size, master address and port) from the SLURM task facts, as torchrun would set them."""
    from submitit.helpers import TorchDistributedEnvironment

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def _coalesced(tensors: Iterable[torch.Tensor], op: Callable[[torch.Tensor], None]) -> None:
    """Run a collective `op` once per (device, dtype) on a flat copy of `tensors`, then copy the result back."""
    groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    for group in groups.values():
        flat = _flatten_dense_tensors(group)
        op(flat)
        for t, synced in zip(group, _unflatten_dense_tensors(flat, group)):
            t.copy_(synced)


@dataclass
class DistEnv:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "DistEnv":
        """Read torchrun's (or a submitit SLURM task's) environment and join the process group once."""
        if "WORLD_SIZE" not in os.environ and os.environ.get("SUBMITIT_EXECUTOR"):
            _export_submitit_env()
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        env = cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
        if not dist.is_initialized():
            if torch.cuda.is_available():
                torch.cuda.set_device(env.local_rank)
                backend = "cpu:gloo,cuda:nccl"  # CUDA tensors over NCCL; objects and CPU runs over gloo
            else:
                backend = "gloo"
            dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
        return env

    def close(self, failed: bool = False) -> None:
        """Leave the process group. After a normal end the ranks meet at a barrier first, so none tears its
        communication threads down while another is still in a collective (an abort at exit otherwise); after
        an error there is no barrier (the other ranks may never reach it): the group is just destroyed."""
        if self.active:
            if not failed:
                dist.barrier()
            dist.destroy_process_group()

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

    def convert_sync_batchnorm(self, nets: nn.ModuleDict, device: torch.device) -> None:
        """Swap every BatchNorm for SyncBatchNorm in place (parameters and buffers are kept, so optimisers
        and references stay valid): batch statistics are then computed over the global batch."""
        if not self.active:
            return
        if device.type != "cuda":
            raise GantrainError("trainer.sync_batchnorm=true needs CUDA (PyTorch's SyncBatchNorm has no CPU kernel); "
                                "set trainer.sync_batchnorm=false on the CPU")
        nn.SyncBatchNorm.convert_sync_batchnorm(nets)

    def wrap(self, model: Any) -> None:
        """Give every rank rank 0's weights and buffers, and make the runtime average gradients."""
        if not self.active:
            return
        tensors = [t.data for net in model.nets.values() for t in list(net.parameters()) + list(net.buffers())]
        _coalesced(_unique(tensors), lambda flat: dist.broadcast(flat, src=0))
        model.rt.grad_sync = self.average_gradients

    def average_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        """All-reduce the mean of this optimiser's gradients (those that exist: the same set on every rank)."""
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return

        def mean(flat: torch.Tensor) -> None:
            dist.all_reduce(flat)
            flat.div_(self.world)

        _coalesced(grads, mean)

    def sync_buffers(self, nets: nn.ModuleDict) -> None:
        """Broadcast rank 0's buffers (running statistics) to all ranks, as DDP does before each forward."""
        if not self.active:
            return
        buffers = _unique([b for b in nets.buffers()])
        if buffers:
            _coalesced(buffers, lambda flat: dist.broadcast(flat, src=0))

    @staticmethod
    def unwrap(net: nn.Module) -> nn.Module:
        return getattr(net, "module", net)

    def all_reduce_mean(self, t: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return t
        t = t.clone()
        dist.all_reduce(t)
        return t / self.world

    def any(self, flag: bool) -> bool:
        """True on every rank if `flag` is true on any rank (a stop signal, a non-finite loss)."""
        if not self.active:
            return flag
        t = torch.tensor([int(flag)], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)  # CPU tensor: travels over gloo even in NCCL jobs
        return bool(t.item())

    def gather_object(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def _unique(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Drop repeats of the same storage (a layer shared by two nets is synced once)."""
    seen: set[int] = set()
    out = []
    for t in tensors:
        if t.numel() and t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            out.append(t)
    return out
