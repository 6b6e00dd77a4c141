#!/usr/bin/env python
"""Each family's embedded-data preset trained at several precisions, its end-of-run metrics side by side.

Issue 17 lets `trainer.precision=auto` pick bf16 on CPUs with native bf16 only where every preset keeps its
quality there; this is the check. For each family, one fresh `gantrain` process per precision, all precisions of
a family started together (so they share the machine's load alike), each with its own run directory; the table
lists the metrics of `RUN/eval_last.json` (the default evaluation of the preset) and the wall time.

    python scripts/preset_quality.py --precisions 32,bf16 --families gan,acgan --out /tmp/pq --markdown
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from acceptance import FAMILIES as ACCEPTANCE_FAMILIES  # noqa: E402

# each family's README command: its embedded data and preset (the acceptance run's own data shrinking dropped);
# latent_encoder needs a trained generator, so it has no preset command of its own
FAMILIES: dict[str, list[str]] = {
    name: [o for o in overrides if o.startswith(("model=", "data="))]
    for name, overrides in ACCEPTANCE_FAMILIES.items() if name != "latent_encoder"
}


def launch(family: str, precision: str, out: Path, extra: list[str]) -> tuple[subprocess.Popen, Path, float]:
    run = out / f"{family}-{precision}"
    cmd = [sys.executable, "-m", "gantrain", *FAMILIES[family], f"trainer.precision={precision}",
           "trainer.progress_bar=false", f"hydra.run.dir={run}", *extra]
    log = open(out / f"{family}-{precision}.log", "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), run, time.perf_counter()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--precisions", default="32,bf16")
    p.add_argument("--out", type=Path, required=True, help="folder for the run directories and logs")
    p.add_argument("--overrides", nargs="*", default=[], help="extra overrides for every run")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        p.error(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    rows, failed = [], False
    for family in families:
        started = [(prec, *launch(family, prec, args.out, args.overrides)) for prec in args.precisions.split(",")]
        for prec, proc, run, t0 in started:
            code = proc.wait()
            wall = time.perf_counter() - t0
            if code or not (run / "eval_last.json").is_file():
                failed = True
                rows.append({"family": family, "precision": prec, "status": f"failed ({code})", "wall_s": round(wall, 1)})
                continue
            metrics = json.loads((run / "eval_last.json").read_text())["metrics"]
            rows.append({"family": family, "precision": prec, "status": "ok", "wall_s": round(wall, 1),
                         "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))}})
            print(json.dumps(rows[-1]), flush=True)
    if args.markdown:
        print("| family | precision | wall (s) | metrics |\n|---|---|---|---|")
        for r in rows:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in r.get("metrics", {}).items()) or r["status"]
            print(f"| {r['family']} | {r['precision']} | {r['wall_s']} | {shown} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
