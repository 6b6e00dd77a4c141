"""The benchmark scripts run end to end and report what BENCHMARKS.md quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
