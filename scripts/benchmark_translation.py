"""Seconds per training iteration and peak memory of the translation families on random images.

    python scripts/benchmark_translation.py --families cyclegan --size 128 --steps 5 [--device cuda] [--precision bf16]

`--reference-mode` turns off what gantrain adds on top of the reference CycleGAN's computation (batched
identity/D forwards), so the two can be compared on the same machine with the same architecture and losses.
Each line also gives the floating-point work of one iteration (counted by torch's FlopCounterMode) and the rate
achieved; `--peak` adds the machine's dense matrix-multiply rate at that precision, the ceiling that bounds how
fast any implementation of the same computation can go. Prints one JSON line per family.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from gantrain.config.schema import group_config
from gantrain.data.base import DataInfo
from gantrain.models.cut import CUT
from gantrain.models.cyclegan import CycleGAN
from gantrain.models.discogan import DiscoGAN
from gantrain.models.dualgan import DualGAN
from gantrain.models.unit import UNIT
from gantrain.trainer.optim import build_optimizer
from gantrain.runtime import Runtime, resolve_device, resolve_precision

FAMILIES = {"cyclegan": CycleGAN, "dualgan": DualGAN, "discogan": DiscoGAN, "unit": UNIT, "cut": CUT}


def bench(name: str, size: int, batch: int, steps: int, device: torch.device, precision: str, reference: bool,
          channels_last: bool) -> dict:
    cls = FAMILIES[name]
    overrides = {"batch_forwards": False} if (reference and name in ("cyclegan", "cut")) else {}
    if name == "dualgan":
        overrides["netG"] = "unet_128" if size == 128 else f"unet_{size}"
    cfg = group_config("model", name, **overrides)
    model = cls(cfg, DataInfo("bench", 3, size))
    model.attach(Runtime(device, precision, channels_last))
    optim = OmegaConf.create({"name": "adam", "lr": 2e-4, "lr_D": None, "betas": [0.5, 0.999], "eps": 1e-8,
                              "weight_decay": 0.0, "fused": None})
    model.configure_optimizers(lambda n, p: build_optimizer(n, p, optim, device))
    gen = torch.Generator().manual_seed(0)
    data = [{k: (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1).to(device) for k in ("A", "B")} for _ in range(2)]
    if channels_last:
        data = [{k: v.contiguous(memory_format=torch.channels_last) for k, v in d.items()} for d in data]
    model.train_step(data[0], 0)  # warm-up
    with FlopCounterMode(display=False) as counter:
        model.train_step(data[1], 0)
    flops = counter.get_total_flops()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for i in range(steps):
        losses = model.train_step(data[i % 2], i + 1)
    float(sum(losses.values()))
    if device.type == "cuda":
        torch.cuda.synchronize()
    sec = (time.perf_counter() - start) / steps
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"family": name, "size": size, "batch": batch, "device": str(device), "precision": precision,
            "reference_mode": reference, "channels_last": channels_last, "s_per_iter": round(sec, 4),
            "gflop_per_iter": round(flops / 1e9, 1), "achieved_gflops": round(flops / sec / 1e9, 1),
            "peak_mem_MiB": round(peak, 1), "threads": torch.get_num_threads()}


def matmul_peak(device: torch.device, precision: str, n: int = 2048, reps: int = 20) -> dict:
    """Dense n x n matrix-multiply rate at this precision: the best case for the convolutions' GEMMs."""
    dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(precision, torch.float32)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    sec = (time.perf_counter() - start) / reps
    return {"matmul_peak": f"{n}x{n}", "device": str(device), "precision": precision,
            "gflops": round(2 * n**3 / sec / 1e9, 1), "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default="cyclegan,dualgan,discogan,unit")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--reference-mode", action="store_true")
    p.add_argument("--peak", action="store_true", help="also measure the dense matmul rate at this precision")
    args = p.parse_args()
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    for name in args.families.split(","):
        print(json.dumps(bench(name, args.size, args.batch, args.steps, device, precision, args.reference_mode,
                               args.channels_last)), flush=True)
    if args.peak:
        print(json.dumps(matmul_peak(device, precision)), flush=True)


if __name__ == "__main__":
    main()
