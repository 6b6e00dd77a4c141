"""Device, precision and the optimiser step with grad scaling: what a family needs from the hardware.

It sits below the families (they step their optimisers through `Runtime.update`), so it imports nothing of
gantrain but the errors; `torch.distributed` set-up lives in trainer/distributed.py."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Iterator

import torch
import torch.nn as nn

from gantrain.errors import GantrainError

MATMUL_PRECISIONS = ("highest", "high", "medium")


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA, then MPS, then CPU; an unavailable device is a one-line error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GantrainError(f"trainer.device={name} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GantrainError("trainer.device=cuda but no CUDA GPU is visible; use trainer.device=cpu or auto")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise GantrainError("trainer.device=mps but MPS is not available; use trainer.device=cpu or auto")
    return device


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: the CPU features that make bf16 autocast faster than fp32 (emulated bf16 is slower).

    torch's `get_cpu_capability()` names vector widths (AVX2, AVX512), not bf16 units, so read the kernel's flags.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:  # not Linux: no way to tell, so no bf16 by default
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto`: bf16 where the hardware has native bf16 (same quality as fp32 for these nets, ~2x faster),
    fp16 with loss scaling on GPUs without it (pre-Ampere: emulated bf16 is slow), fp32 on other CPUs."""
    precision = str(precision)
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "16"
        if device.type == "cpu" and cpu_has_native_bf16():
            return "bf16"
        return "32"
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise GantrainError("this GPU has no bf16 support; use trainer.precision=16 or 32")
    return precision


def apply_backend_settings(device: torch.device, cudnn_benchmark: bool, matmul_precision: str, deterministic: bool) -> None:
    """cuDNN autotuning (CUDA only, off under trainer.deterministic) and the fp32 matmul precision (TF32 at `high`)."""
    if matmul_precision not in MATMUL_PRECISIONS:
        raise GantrainError(
            f"trainer.matmul_precision={matmul_precision} is not valid; choose one of: {', '.join(MATMUL_PRECISIONS)}"
        )
    torch.set_float32_matmul_precision(matmul_precision)
    torch.backends.cudnn.benchmark = bool(cudnn_benchmark) and device.type == "cuda" and not deterministic


class Runtime:
    """Holds the device, the autocast dtype and one GradScaler per optimiser (fp16 only)."""

    def __init__(self, device: torch.device, precision: str, channels_last: bool = False) -> None:
        self.device = device
        self.precision = precision
        self.channels_last = channels_last
        self.dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(precision)
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        self.grad_sync = None  # set under torchrun: averages gradients across ranks before each step

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=self.dtype):
            yield

    def penalty_precision(self) -> contextlib.AbstractContextManager:
        """Where a gradient penalty runs: at fp16 in fp32 outside autocast, since its input gradients are taken
        without loss scaling and would underflow in fp16 (the AMP docs' fp32 option); elsewhere unchanged."""
        if self.precision == "16":
            return torch.autocast(device_type=self.device.type, enabled=False)
        return contextlib.nullcontext()

    def input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def scaler(self, name: str) -> torch.amp.GradScaler | None:
        if self.precision != "16":
            return None
        if name not in self.scalers:
            self.scalers[name] = torch.amp.GradScaler(self.device.type)
        return self.scalers[name]

    def update(self, name: str, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        scaler = self.scaler(name)
        if scaler is None:
            loss.backward()
            if self.grad_sync is not None:
                self.grad_sync(optimizer)
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            if self.grad_sync is not None:
                self.grad_sync(optimizer)
            scaler.step(optimizer)
            scaler.update()

    def state_dict(self) -> dict[str, dict]:
        return {name: s.state_dict() for name, s in self.scalers.items()}

    def load_state_dict(self, state: dict[str, dict]) -> None:
        for name, s in state.items():
            scaler = self.scaler(name)
            if scaler is not None:
                scaler.load_state_dict(s)


def local_batch_norm(net: nn.Module) -> nn.Module:
    """`net` for a forward on one rank alone: SyncBatchNorm layers (whose train-mode forward waits for every
    rank) become plain BatchNorm layers sharing the same parameters and buffers; `net` itself if it has none."""
    if not any(isinstance(m, nn.SyncBatchNorm) for m in net.modules()):
        return net
    import copy

    def revert(module: nn.Module) -> nn.Module:
        if isinstance(module, nn.SyncBatchNorm):
            plain = nn.BatchNorm2d(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
            plain._parameters, plain._buffers = module._parameters, module._buffers  # shared, not copied
            plain.train(module.training)
            return plain
        out = copy.copy(module)
        out._modules = {name: revert(child) for name, child in module._modules.items()}
        return out

    return revert(net)
