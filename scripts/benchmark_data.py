#!/usr/bin/env python
"""The data path of the folder datasets under each `data.cache` mode: start-up, peak memory, images/s.

    python scripts/benchmark_data.py --root /tmp/gantrain_bench --images 20000 --pairs 5000 --markdown

Builds (once, reused by later calls) a synthetic unpaired folder (trainA/ trainB/, `--images` 256 px JPEGs in
all) and an aligned folder (train/, `--pairs` 512x256 A|B JPEGs) of smooth random images (JPEG sizes near
photos'), then runs each cell in a fresh process: device, host and stream x data.num_workers 0/1/2 (device
and host use no workers). Per cell: seconds from the command to the first batch (interpreter start, imports,
listing, decoding where the mode decodes up front), peak RSS of the main process and of its largest worker,
and the data path's images/s over `--images-timed` images at batch 1 (load 286, random crop 256, flip: the
CycleGAN and pix2pix defaults). On a CPU machine `device` and `host` are the same gathers from host memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

CELLS = [("device", 0), ("host", 0), ("stream", 0), ("stream", 1), ("stream", 2)]


def _write(job: tuple[str, int, int, int]) -> None:
    path, seed, w, h = job
    rng = np.random.default_rng(seed)
    small = (rng.random((h // 16, w // 16, 3)) * 255).astype(np.uint8)
    big = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), dtype=np.int16)
    big = np.clip(big + rng.integers(-12, 13, big.shape), 0, 255).astype(np.uint8)  # some texture
    Image.fromarray(big).save(path, quality=90)


def make_folders(root: Path, images: int, pairs: int) -> tuple[Path, Path]:
    """root/unpaired (trainA, trainB, testA, testB) and root/aligned (train, test); existing files are kept."""
    jobs = []
    for k, (side, n) in enumerate((("trainA", images // 2), ("trainB", images - images // 2), ("testA", 4), ("testB", 4))):
        (root / "unpaired" / side).mkdir(parents=True, exist_ok=True)
        jobs += [(str(root / "unpaired" / side / f"{i:06d}.jpg"), k * 10**7 + i, 256, 256) for i in range(n)]
    for k, (split, n) in enumerate((("train", pairs), ("test", 4)), start=4):
        (root / "aligned" / split).mkdir(parents=True, exist_ok=True)
        jobs += [(str(root / "aligned" / split / f"{i:06d}.jpg"), k * 10**7 + i, 512, 256) for i in range(n)]
    todo = [j for j in jobs if not os.path.exists(j[0])]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(_write, todo, chunksize=64))
    return root / "unpaired", root / "aligned"


def cell(kind: str, folder: str, mode: str, workers: int, timed: int) -> dict[str, float | str]:
    """One measurement, in this (fresh) process; prints `first` the moment the first batch exists."""
    import torch
    from hydra import compose, initialize_config_dir

    from gantrain.config.paths import config_dir
    from gantrain.data.aligned import AlignedFolder
    from gantrain.data.loader import make_batch_stream
    from gantrain.data.unpaired import UnpairedFolder

    torch.set_num_threads(1)  # the data path alone: more intra-op threads only contend with the workers
    cls = UnpairedFolder if kind == "unpaired" else AlignedFolder
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):  # the YAML holds the values
        overrides = [f"data={kind}_folder", f"data.root={folder}", f"data.cache={mode}", f"data.num_workers={workers}"]
        data = cls(compose(config_name="train", overrides=overrides).data)
    stream = make_batch_stream(data.split("train"), batch_size=1, seed=0, device=torch.device("cpu"),
                               num_workers=workers, cache=data.cache_mode)
    it = (batch for epoch in range(10**6) for batch in stream.epoch(epoch))
    next(it)
    print("first", flush=True)
    t = time.perf_counter()
    for _ in range(timed):
        next(it)
    rate = timed / (time.perf_counter() - t)
    worker_peak = 0  # persistent workers are not reaped yet: their peaks are in /proc
    for pid in _children():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    worker_peak = max(worker_peak, int(line.split()[1]))
        except OSError:
            pass
    return {"images_per_s": rate, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "worker_rss_mib": worker_peak / 1024, "mode": data.cache_mode}


def _children() -> list[int]:
    me = str(os.getpid())
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "stat").read_text().split(") ")[1].split()[1] == me:
                    out.append(int(d.name))
            except (OSError, IndexError):
                pass
    return out


def run_cell(kind: str, folder: Path, mode: str, workers: int, timed: int) -> dict[str, float | str]:
    cmd = [sys.executable, __file__, "--cell", kind, str(folder), mode, str(workers), "--images-timed", str(timed)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = None
    lines = []
    for line in proc.stdout:
        if line.strip() == "first":
            first = time.perf_counter() - start
        else:
            lines.append(line)
    if proc.wait() != 0:
        raise SystemExit(f"cell {kind} {mode} {workers} failed")
    return {"data": kind, "cache": mode, "workers": workers, "first_batch_s": first, **json.loads(lines[-1])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default="/tmp/gantrain_bench")
    p.add_argument("--images", type=int, default=20000, help="256 px JPEGs in the unpaired folder (both sides)")
    p.add_argument("--pairs", type=int, default=5000, help="512x256 A|B JPEGs in the aligned folder")
    p.add_argument("--images-timed", type=int, default=300)
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--cell", nargs=4, metavar=("KIND", "FOLDER", "MODE", "WORKERS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.cell:
        kind, folder, mode, workers = args.cell
        print(json.dumps(cell(kind, folder, mode, int(workers), args.images_timed)), flush=True)
        return
    t = time.perf_counter()
    unpaired, aligned = make_folders(Path(args.root), args.images, args.pairs)
    print(f"# folders ready in {time.perf_counter() - t:.0f} s: {args.images} images at 256 px, {args.pairs} pairs at 512x256",
          flush=True)
    rows = [run_cell(kind, folder, mode, w, args.images_timed)
            for kind, folder in (("unpaired", unpaired), ("aligned", aligned)) for mode, w in CELLS]
    if args.markdown:
        print("| data | data.cache | workers | command to first batch (s) | peak RSS main (MiB) | peak RSS worker (MiB) | items/s |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['data']} | {r['cache']} | {r['workers']} | {r['first_batch_s']:.1f} | {r['rss_mib']:.0f} | "
                  f"{r['worker_rss_mib']:.0f} | {r['images_per_s']:.0f} |")
    else:
        for r in rows:
            print(json.dumps(r))


if __name__ == "__main__":
    main()
