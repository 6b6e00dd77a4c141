"""Scale-out: DDP under torchrun (2 CPU ranks over gloo), sweeps with TensorBoard hparams, Optuna and SLURM configs."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY, compose_cfg, run_cli

WORKER = Path(__file__).with_name("ddp_worker.py")


def torchrun(args: list[str], cwd: Path, dump: Path) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 gantrain ...` on the CPU; each rank dumps its weights to `dump`."""
    dump.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GANTRAIN_TEST_DUMP": str(dump), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def load_dumps(dump: Path) -> tuple[dict, dict]:
    return torch.load(dump / "rank0.pt"), torch.load(dump / "rank1.pt")


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different


def test_ddp_two_ranks_one_run_dir_identical_weights_exact_resume(tmp_path):
    proc = torchrun([*TINY], tmp_path, tmp_path / "first")
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = list((tmp_path / "runs" / "dcgan-digits").iterdir())
    assert len(runs) == 1, runs  # rank 0 chose the directory for both ranks
    run = runs[0]
    r0, r1 = load_dumps(tmp_path / "first")
    assert_same(r0, r1)  # parameters and BatchNorm buffers
    assert any("running_mean" in k for k in r0)
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and ckpt["images_seen"] == 4 * 16 * 2
    assert_same({f"{n}.{k}": v for n, sd in ckpt["nets"].items() for k, v in sd.items()}, r0)
    rngs = ckpt["per_rank"]["rng"]
    assert not torch.equal(rngs[0]["torch"], rngs[1]["torch"])  # each rank keeps its own noise stream
    assert (run / "metrics.jsonl").is_file() and not list(tmp_path.glob("runs/*/*/.hydra/*rank*"))

    # resume both ranks from the step-2 checkpoint: the same run dir, and the same weights as the uninterrupted run
    proc = torchrun([f"resume={run / 'checkpoints' / 'step_0000002.pt'}"], tmp_path, tmp_path / "resumed")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert list((tmp_path / "runs" / "dcgan-digits").iterdir()) == [run]
    s0, s1 = load_dumps(tmp_path / "resumed")
    assert_same(s0, s1)
    assert_same(s0, r0)
