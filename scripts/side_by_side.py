"""CycleGAN side by side with the reference implementation's own train.py, both through their command lines.

    python scripts/side_by_side.py --reference-dir ../shared/reference/pytorch-CycleGAN-and-pix2pix \
        [--size 128] [--counts 10,30] [--settings default,32,reference-mode,bf16-channels-last]

Both programs train ResNet-9 CycleGAN (70x70 PatchGAN, LSGAN, identity 0.5, pool 50) at batch 1 on the same random
unpaired folder, resized to size + size/8 (rounded to even) and cropped to `--size`. Seconds per iteration are
the difference of a long and a short run divided by the difference of their lengths, so interpreter start-up, data loading and the
final checkpoint cancel. The runs are interleaved (every program at the short count, then every one at the long
count) so that a change in machine load hits them alike. Prints one JSON line per setting with its speed-up over
the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from acceptance import reference_load, reference_train_cmd, write_images  # noqa: E402

SETTINGS = {
    "default": [],
    "32": ["trainer.precision=32"],
    "reference-mode": ["trainer.precision=32", "model.batch_forwards=false"],
    "bf16-channels-last": ["trainer.precision=bf16", "trainer.channels_last=true"],
    "bf16-compile": ["trainer.precision=bf16", "trainer.compile=true"],
}


def gantrain_cmd(setting: str, data: Path, work: Path, n: int, size: int,
                 extra: list[str]) -> tuple[list[str], dict[str, str], Path]:
    exe = Path(sys.executable).with_name("gantrain")
    cmd = [str(exe), "model=cyclegan", "data=unpaired_folder", f"data.root={data}", f"data.load_size={reference_load(size)}",
           f"data.crop_size={size}", "data.batch_size=1", f"trainer.max_steps={n}", "eval=none", "logger=none",
           "trainer.sample_every=100000", "trainer.ckpt_every=100000", "trainer.log_every=100000",
           "trainer.progress_bar=false", f"hydra.run.dir={work / f'g-{setting}-{n}'}", *SETTINGS[setting], *extra]
    return cmd, dict(os.environ), Path.cwd()


def timed(name: str, cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode:
        raise RuntimeError(f"{name} failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-3:]}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference-dir", required=True)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--counts", default="10,30")
    p.add_argument("--settings", default="default,32,reference-mode,bf16-channels-last")
    p.add_argument("--workdir", default=None)
    p.add_argument("--overrides", nargs="*", default=[], help="extra gantrain overrides for every setting")
    args = p.parse_args(argv)
    short, long = (int(c) for c in args.counts.split(","))
    settings = [s for s in args.settings.split(",") if s]
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        p.error(f"unknown settings {sorted(unknown)}; choose from {', '.join(SETTINGS)}")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="gantrain-sbs-"))
    data = work / "data"
    for i, split in enumerate(("trainA", "trainB", "testA", "testB")):
        write_images(data / split, long, 256, 3, seed=i)
    ref = Path(args.reference_dir).resolve()
    programs = {"reference": lambda n: (*reference_train_cmd(data, work, n, args.size), ref)}
    programs.update({s: (lambda n, s=s: gantrain_cmd(s, data, work, n, args.size, args.overrides)) for s in settings})
    times: dict[str, dict[int, float]] = {name: {} for name in programs}
    for n in (short, long):
        for name, build in programs.items():
            times[name][n] = timed(name, *build(n))
            print(f"# {name} {n} iterations: {times[name][n]:.1f} s", file=sys.stderr, flush=True)
    per_iter = {name: (t[long] - t[short]) / (long - short) for name, t in times.items()}
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    for name, sec in per_iter.items():
        print(json.dumps({"program": "reference train.py" if name == "reference" else f"gantrain {name}",
                          "overrides": SETTINGS.get(name, []), "size": args.size, "s_per_iter": sec,
                          "speedup_vs_reference": per_iter["reference"] / sec,
                          "run_seconds": {str(n): t for n, t in times[name].items()}, "machine": machine}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
