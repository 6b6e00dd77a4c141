#!/usr/bin/env python
"""The digits quality check of the default `gantrain` run (issue: DCGAN on digits).

Trains with the given overrides (none = the default run), times it, and checks the end-of-run classifier
metrics against the targets: all ten classes present, none above 15% of samples, and a Fréchet distance in
the digits classifier's feature space within 3x of real-train vs real-test.

    python scripts/quality_digits.py                       # the default run
    python scripts/quality_digits.py trainer.precision=bf16
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"classes_present": (">=", 10), "max_class_share": ("<=", 0.15), "cls_fd_ratio": ("<=", 3.0)}


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "gantrain", *argv, f"hydra.run.dir={run}", "trainer.progress_bar=false"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode:
            print(proc.stderr[-3000:])
            return proc.returncode
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    final = {k.removeprefix("eval/"): v for r in rows for k, v in r.items() if k.startswith("eval/")}
    ok = True
    print(f"command: gantrain {' '.join(argv)}")
    print(f"wall time: {wall:.1f} s (target < 180 s on 2 CPU cores, including start-up and evaluation)")
    for key, (op, bound) in TARGETS.items():
        value = final[key]
        passed = value >= bound if op == ">=" else value <= bound
        ok &= passed
        print(f"{key}: {value:.4g} (target {op} {bound}) {'PASS' if passed else 'FAIL'}")
    for key in ("cls_fd", "cls_fd_ref", "classifier_test_accuracy"):
        print(f"{key}: {final[key]:.4g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
