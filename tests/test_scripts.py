"""The benchmark scripts run end to end and report what BENCHMARKS.md quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_translation_reports_time_work_and_peak(tmp_path):
    cmd = [sys.executable, str(ROOT / "scripts" / "benchmark_translation.py"), "--families", "dualgan",
           "--size", "32", "--steps", "1", "--precision", "32", "--peak"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=True).stdout
    family, peak = (json.loads(line) for line in out.strip().splitlines())
    assert family["family"] == "dualgan" and family["s_per_iter"] > 0
    assert family["gflop_per_iter"] > 0
    rate = family["gflop_per_iter"] / family["s_per_iter"]  # both rounded in the output
    assert abs(family["achieved_gflops"] - rate) <= 0.05 * rate + 0.1
    assert peak["precision"] == "32" and peak["gflops"] > 0


def test_side_by_side_times_both_programs_by_difference(tmp_path):
    """The script's own arithmetic, against a stand-in for the reference's train.py whose cost per iteration is known
    (the real reference lives outside the repository, in ../shared/reference)."""
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "train.py").write_text(
        "import argparse, time\n"
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--max_dataset_size', type=int)\n"
        "p.parse_known_args()\n"
        "time.sleep(0.5 * p.parse_known_args()[0].max_dataset_size)\n")
    cmd = [sys.executable, str(ROOT / "scripts" / "side_by_side.py"), "--reference-dir", str(ref), "--size", "32",
           "--counts", "1,3", "--settings", "32", "--workdir", str(tmp_path / "work"),
           "--overrides", "model.ngf=4", "model.ndf=4"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path, check=True).stdout
    reference, gantrain = (json.loads(line) for line in out.strip().splitlines())
    assert reference["program"] == "reference train.py" and abs(reference["s_per_iter"] - 0.5) < 0.2
    assert gantrain["program"] == "gantrain 32" and gantrain["overrides"] == ["trainer.precision=32"]
    for row in (reference, gantrain):  # the difference of a 3- and a 1-iteration run, over 2
        assert row["s_per_iter"] == pytest.approx((row["run_seconds"]["3"] - row["run_seconds"]["1"]) / 2)
    assert gantrain["speedup_vs_reference"] == pytest.approx(reference["s_per_iter"] / gantrain["s_per_iter"])


def test_preset_quality_trains_each_precision_and_tabulates_its_metrics(tmp_path, classifier_cache):
    cmd = [sys.executable, str(ROOT / "scripts" / "preset_quality.py"), "--families", "gan", "--precisions", "32,bf16",
           "--out", str(tmp_path / "pq"), "--markdown", "--overrides", "trainer.max_steps=2", "trainer.device=cpu",
           "model.g_hidden=[16]", "model.d_hidden=[16]", "eval.num_samples=100", "eval.batch_size=50",
           f"eval.classifier_cache={classifier_cache}", "trainer.num_threads=1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [(r["family"], r["precision"], r["status"]) for r in rows] == [("gan", "32", "ok"), ("gan", "bf16", "ok")]
    assert all("cls_fd" in r["metrics"] for r in rows)
    assert "training gan on digits: 2 steps" in (tmp_path / "pq" / "gan-bf16.log").read_text()
    assert "| gan | bf16 |" in out
