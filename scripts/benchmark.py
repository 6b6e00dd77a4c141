#!/usr/bin/env python
"""Training speed and memory of one or more configs, measured in one process so ratios are comparable.

    python scripts/benchmark.py                                  # DCGAN on digits at precision 32 and bf16
    python scripts/benchmark.py --overrides model=gan --precisions 32
    python scripts/benchmark.py --steps 50 --warmup 5 --markdown
    python scripts/benchmark.py --variants "" "trainer.channels_last=true" "trainer.compile=true"
    python scripts/benchmark.py --all --markdown                 # every family in configs/model/ at its defaults

Each row: steps/s, images/s and peak memory (CUDA: max allocated; CPU: the peak RSS of the whole process, the
interpreter and torch included) for the family's own train_step (data batching included, logging and checkpoints
excluded). Each row runs in a fresh process, so its peak memory is its own; the rows of one call run one after the
other on the same machine, so their ratio is the figure to quote on a shared machine. `--all` skips (saying why) a
family whose defaults cannot build on the default dataset.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from gantrain.config.paths import config_dir
from gantrain.config.schema import validate_config
from gantrain.trainer.trainer import Trainer


def measure(overrides: list[str], steps: int, warmup: int) -> dict[str, float | str]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["eval.metrics=[]", "logger.tensorboard=false", *overrides])
    cfg = validate_config(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp))
        trainer.setup()
        device = trainer.rt.device
        batches = trainer.stream.batches()

        def next_batch():
            return next(batches)[2]

        for i in range(warmup):
            trainer.model.train_step(next_batch(), i)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for i in range(steps):
            losses = trainer.model.train_step(next_batch(), warmup + i)
        float(sum(v.float() for v in losses.values()))  # one sync at the end
        elapsed = time.perf_counter() - start
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        trainer.logger.close()
    bs = cfg.data.batch_size
    return {
        "config": " ".join(overrides) or "(defaults)",
        "device": str(device),
        "precision": trainer.rt.precision,
        "batch": bs,
        "steps/s": steps / elapsed,
        "images/s": steps * bs / elapsed,
        "peak MiB": peak,
    }


def _measure_or_skip(args: tuple[list[str], int, int]) -> dict[str, float | str]:
    try:
        return measure(*args)
    except Exception as exc:  # noqa: BLE001 - a family that cannot build is reported, not fatal
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {"config": " ".join(args[0]), "skipped": reason[:200]}


# The embedded dataset each family trains on when --all gives no data= (the digits suit the single-domain ones).
FAMILY_DATA = {
    "cyclegan": "digits2negative", "dualgan": "digits2negative", "discogan": "digits2negative",
    "unit": "digits2negative", "cogan": "digits2negative", "pix2pix": "edges2digits", "gan_cls": "shapes",
    "cut": "digits2edges", "fastcut": "digits2edges",
}


def families() -> list[str]:
    return sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))


def family_overrides(name: str, user: list[str]) -> list[str]:
    """`model=<name>` plus its embedded dataset, unless the user chose the data."""
    if any(o.startswith("data=") for o in user) or name not in FAMILY_DATA:
        return [f"model={name}"]
    return [f"model={name}", f"data={FAMILY_DATA[name]}"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides, e.g. model=dcgan data=digits")
    p.add_argument("--precisions", default="32,bf16", help="comma-separated trainer.precision values")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--variants", nargs="*", default=None,
                   help="override sets to compare, one quoted string each (replaces --precisions)")
    p.add_argument("--all", action="store_true", help="every family in configs/model/ at its default size")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = p.parse_args(argv)
    if args.variants is not None:
        variants = [v.split() for v in args.variants]
    else:
        variants = [[f"trainer.precision={x}"] for x in args.precisions.split(",")]
    if args.all:
        jobs = [[*family_overrides(name, args.overrides), *args.overrides, f"trainer.device={args.device}", *v] for name in families() for v in variants]
    else:
        jobs = [[*args.overrides, *v, f"trainer.device={args.device}"] for v in variants]
    ctx = mp.get_context("spawn")
    rows = []
    for job in jobs:  # one fresh process per row: peak memory is that row's own
        with ctx.Pool(1) as pool:
            row = pool.apply(_measure_or_skip, ((job, args.steps, args.warmup),))
        if "skipped" in row and not args.all:
            raise SystemExit(f"benchmark: {row['config']}: {row['skipped']}")
        rows.append(row)
    for row in rows:
        if "skipped" in row:
            print(f"# skipped {row['config']}: {row['skipped']}")
    rows = [r for r in rows if "skipped" not in r]
    if not rows:
        return
    base = rows[0]["steps/s"]
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, CPU {cpu}, GPU {gpu}, python {sys.version.split()[0]}")
    cols = ["config", "device", "precision", "batch", "steps/s", "images/s", "peak MiB", "speed vs first"]
    if args.markdown:
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
    for row in rows:
        row["speed vs first"] = row["steps/s"] / base
        cells = [f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in cols]
        print(("| " + " | ".join(cells) + " |") if args.markdown else "  ".join(cells))


if __name__ == "__main__":
    main()
