"""Real signals to a real `gantrain` process: it saves, prints the resume command, exits 128 + signal (130 for
Ctrl-C), and resuming reaches the same weights as a run that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli
from test_reproducibility import assert_same_checkpoint

STEPS = 80
RUN = ["gantrain", "seed=5", "trainer.device=cpu", "trainer.num_threads=1", "trainer.progress_bar=false",
       "logger.tensorboard=false", "eval.metrics=[]", "eval.at_end=false", "trainer.sample_every=0", "trainer.log_every=1",
       "trainer.ckpt_every=0", "trainer.max_epochs=null", f"trainer.max_steps={STEPS}", "data.image_size=16",
       "data.batch_size=8", "model.z_dim=4", "model.ngf=4", "model.ndf=4", "optim.schedule=linear_decay"]


def logged_step(run_dir: Path) -> int:
    """The newest step in metrics.jsonl (0 before the first log line)."""
    path = run_dir / "metrics.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return max((json.loads(line)["step"] for line in lines if line.strip()), default=0)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """One uninterrupted run of STEPS steps, shared by both signals."""
    where = tmp_path_factory.mktemp("straight")
    proc = run_cli(RUN + [f"hydra.run.dir={where / 'run'}"], where)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return where / "run"


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_run_then_resume_is_exact(signum, code, straight, tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", *RUN, f"hydra.run.dir={run_dir}"], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    deadline = time.monotonic() + 120
    while logged_step(run_dir) < 5:  # training has started: the handler is installed and steps are running
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be signalled"
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert f"resume with: gantrain resume={run_dir}" in err
    stopped = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["step"]
    assert 5 <= stopped < STEPS, "the signal must land mid-run"
    resumed = run_cli(["gantrain", f"resume={run_dir}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_checkpoint(straight, run_dir)
