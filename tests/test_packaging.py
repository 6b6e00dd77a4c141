"""The built wheel carries the configs and trains from any directory, without the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_ships_configs_and_trains_elsewhere(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = wheels.glob("gantrain-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "gantrain/configs/train.yaml" in names and "gantrain/configs/model/dcgan.yaml" in names
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "import gantrain.config.paths as p; print(p.config_dir())"
    where = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.strip().startswith(str(target))
    proc = subprocess.run(
        [sys.executable, "-m", "gantrain", "debug=default", "model.ngf=8", "model.ndf=8", "data.batch_size=16",
         "trainer.max_steps=2", "hydra.run.dir=out"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (elsewhere / "out" / "checkpoints" / "last.pt").is_file()
