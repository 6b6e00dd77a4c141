"""The GPU acceptance run: every family at every precision through the real training loop, then the CLIs.

    python scripts/acceptance.py --device cuda [--reference-dir DIR] [--out acceptance.json]
    python scripts/acceptance.py --device cpu --quick          # the same checks, tiny (a test runs this)

Each cell (family x precision) trains through `Trainer.fit` with EMA where the family has one, a sample grid and
a checkpoint at the midpoint and (full mode, or the first family in quick mode) an evaluation at the end; resumes
from the midpoint checkpoint to the end; then runs gantrain-sample / -translate / -invert / -eval on the result
(precision 32 cells) and counts host-device syncs in the steps that are not log, sample or checkpoint steps.
`trainer.compile=true` runs for the families in COMPILE. In full mode the CycleGAN benchmark at 256 px follows
(the reference's own train.py with --reference-dir, gantrain's reference mode, defaults and fastest settings).
Prints one table and writes it as JSON; exits 1 if any cell failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from PIL import Image

from gantrain import runs
from gantrain.config.paths import config_dir
from gantrain.config.schema import validate_config
from gantrain.runtime import resolve_precision
from gantrain.trainer.trainer import Trainer

# One line per family: its embedded-data config and the overrides that make it tiny for --quick and the tests
# (`None` in QUICK: none needed). A new family is one line here (and one in CLI if a CLI applies to it).
FAMILIES: dict[str, list[str]] = {
    "gan": ["model=gan", "data=digits"],
    "dcgan": ["model=dcgan", "data=digits"],
    "cgan": ["model=cgan", "data=digits"],
    "acgan": ["model=acgan", "data=digits"],
    "gan_cls": ["model=gan_cls", "data=shapes", "data.num_train=96", "data.num_test=24", "model.pretrain_steps=2"],
    "bigan": ["model=bigan", "data=digits"],
    "latent_encoder": ["model=latent_encoder", "data=digits"],  # model.generator: the dcgan cell's run
    "cogan": ["model=cogan", "data=digits2negative"],
    "cyclegan": ["model=cyclegan", "data=digits2negative"],
    "dualgan": ["model=dualgan", "data=digits2negative"],
    "discogan": ["model=discogan", "data=digits2negative"],
    "unit": ["model=unit", "data=digits2negative"],
    "pix2pix": ["model=pix2pix", "data=edges2digits"],
    "cut": ["model=cut", "data=digits2edges"],
    "fastcut": ["model=fastcut", "data=digits2edges"],
}
QUICK: dict[str, list[str]] = {
    "gan": ["data.image_size=16", "model.g_hidden=[32]", "model.d_hidden=[32]", "model.z_dim=8"],
    "dcgan": ["data.image_size=16", "model.ngf=4", "model.ndf=4", "model.z_dim=8"],
    "cgan": ["data.image_size=16", "model.g_hidden=[32,32]", "model.d_hidden=[32]", "model.z_dim=8"],  # preset: arch=mlp
    "acgan": ["data.image_size=16", "model.ngf=4", "model.ndf=4", "model.z_dim=8"],
    "gan_cls": ["data.image_size=16", "data.batch_size=8", "model.ngf=8", "model.ndf=8", "model.pretrain_batch=16",
                "model.text_dim=16", "model.proj_dim=8", "model.word_dim=8", "model.bank_size=16"],
    "bigan": ["data.image_size=16", "model.g_hidden=[32]", "model.e_hidden=[32]", "model.d_x_hidden=[32]",
              "model.d_z_hidden=[16]", "model.d_joint_hidden=[32]", "model.z_dim=8"],
    "latent_encoder": ["data.image_size=16", "model.ndf=4"],
    "cogan": ["data.image_size=16", "model.z_dim=8", "data.batch_size=8"],
    "cyclegan": ["data.batch_size=2", "model.ngf=4", "model.ndf=4", "model.netG=resnet_2blocks", "model.pool_size=3"],
    "dualgan": ["data.batch_size=2", "model.ngf=4", "model.ndf=4", "model.netG=unet_32", "model.d_steps=2"],
    "discogan": ["data.batch_size=2", "model.ngf=4", "model.ndf=4", "model.official_mix=true", "model.curriculum_iters=2"],
    "unit": ["data.batch_size=2", "model.ngf=4", "model.ndf=4", "model.n_res=1", "model.netD=basic"],
    "pix2pix": ["data.batch_size=2", "model.ngf=4", "model.ndf=4", "model.netG=unet_32"],
    "cut": ["data.batch_size=2", "model.ngf=4", "model.ndf=4", "model.netG=resnet_2blocks", "model.nce_layers=[0,4,8,10]",
            "model.num_patches=16", "model.netF_nc=8"],
    "fastcut": ["data.batch_size=2", "model.ngf=4", "model.ndf=4", "model.netG=resnet_2blocks", "model.nce_layers=[0,4,8,10]",
                "model.num_patches=16", "model.netF_nc=8"],
}
EMA_FAMILIES = ("gan", "dcgan", "cgan", "acgan", "gan_cls", "cogan")  # single-generator-sampling families
COMPILE = ("dcgan", "cyclegan")
PRECISIONS = ("32", "bf16", "16")
TRANSLATE = ("cyclegan", "dualgan", "discogan", "unit", "pix2pix", "cut", "fastcut")  # cut/fastcut: AtoB only
SAMPLE = ("gan", "dcgan", "cgan", "acgan", "bigan", "cogan")
INVERT = ("latent_encoder",)
COMMON = ["trainer.max_epochs=null", "trainer.progress_bar=false", "logger.tensorboard=false", "trainer.keep_last=10"]


def compose(overrides: list[str]):
    """The config `gantrain OVERRIDES` would train with (Hydra's compose, then gantrain's validation)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return validate_config(hydra_compose(config_name="train", overrides=overrides))


class SyncCounter:
    """Counts host-device synchronisations while `on`.

    CUDA: `torch.cuda.set_sync_debug_mode("warn")` makes every synchronising call warn; the warnings are counted.
    CPU (nothing synchronises there): the calls that would sync on a GPU are counted instead, i.e. `item`,
    `tolist`, `__bool__`, `__float__`, `__int__` on tensors, except in code whose tensors stay on the host on a
    GPU too: the image pool's CPU generator and the step counters of non-fused optimisers (CPU tensors there).
    """

    HOST_SIDE = ("image_pool.py", "torch/optim/optimizer.py")
    METHODS = ("item", "tolist", "__bool__", "__float__", "__int__")

    def __init__(self, device: torch.device) -> None:
        self.device, self.count, self.on = device, 0, False

    @contextlib.contextmanager
    def installed(self) -> Iterator["SyncCounter"]:
        if self.device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
            original = warnings.showwarning

            def show(message, *args, **kwargs):
                if self.on and "synchroniz" in str(message):
                    self.count += 1
                    return None
                return original(message, *args, **kwargs)

            try:
                with warnings.catch_warnings():  # restores the filters and showwarning on the way out
                    warnings.simplefilter("always")
                    warnings.showwarning = show
                    yield self
            finally:
                torch.cuda.set_sync_debug_mode(0)
            return
        saved = {name: getattr(torch.Tensor, name) for name in self.METHODS}

        def wrap(name: str, fn: Callable) -> Callable:
            def counted(tensor, *args, **kwargs):
                if self.on:
                    caller = sys._getframe(1).f_code.co_filename
                    if not caller.endswith(self.HOST_SIDE):
                        self.count += 1
                return fn(tensor, *args, **kwargs)
            return counted

        for name, fn in saved.items():
            setattr(torch.Tensor, name, wrap(name, fn))
        try:
            yield self
        finally:
            for name, fn in saved.items():
                setattr(torch.Tensor, name, fn)


def count_step_syncs(trainer: Trainer, counter: SyncCounter) -> list[int]:
    """Wrap the family's `train_step` so each interval from one step's start to the next is counted, and keep
    the counts of intervals whose step is no log, sample or checkpoint step (those read values on purpose).
    The trainer's per-step finiteness check on a single CPU process (free there) is not counted."""
    tcfg, plain = trainer.cfg.trainer, []
    step_fn, check_fn = trainer.model.train_step, trainer.meter.check
    state = {"start": None, "step": None}

    def special(step: int) -> bool:
        return any(every and step % every == 0 for every in (tcfg.log_every, tcfg.sample_every, tcfg.ckpt_every)) \
            or step >= trainer.total_steps

    def close_interval() -> None:
        if state["start"] is not None and not special(state["step"] + 1):
            plain.append(counter.count - state["start"])

    def counted_step(batch, step):
        close_interval()
        counter.on = True
        state["start"], state["step"] = counter.count, step
        return step_fn(batch, step)

    def uncounted_check(*args, **kwargs):
        was, counter.on = counter.on, False
        try:
            return check_fn(*args, **kwargs)
        finally:
            counter.on = was

    trainer.model.train_step = counted_step
    if trainer.rt.device.type == "cpu":
        trainer.meter.check = uncounted_check
    return plain


def peak_memory_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def state_equal(a: Trainer, b: Trainer) -> bool:
    return all(torch.equal(v, b.model.nets[n].state_dict()[k]) for n in a.model.nets for k, v in a.model.nets[n].state_dict().items())


def write_images(folder: Path, n: int, size: int, channels: int, seed: int = 0) -> Path:
    """A few random PNG images: inputs for gantrain-translate and gantrain-invert."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        arr = rng.integers(0, 256, (size, size, channels) if channels == 3 else (size, size), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{i}.png")
    return folder


def run_cli(main: Callable[[list[str]], Any], argv: list[str]) -> None:
    """A console command in this process (no interpreter start-up); its one-line failure becomes an exception."""
    try:
        main(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError(f"{main.__module__} {' '.join(argv)} exited with {exc.code}") from None


def run_clis(family: str, run: Path, device: str, work: Path, info: Any, eval_num: int | None) -> list[str]:
    from gantrain.cli import eval as eval_cli, invert, sample, translate

    done = []
    if family in SAMPLE:
        run_cli(sample.main, [str(run), "--out", str(work / "sample"), "--num", "8", "--device", device])
        done.append("sample")
    if family in TRANSLATE:
        images = write_images(work / "inputs", 2, info.image_size, info.channels)
        direction = "AtoB" if family != "pix2pix" else info.direction
        run_cli(translate.main, [str(run), "--input", str(images), "--out", str(work / "translated"),
                                 "--direction", direction, "--device", device])
        done.append("translate")
    if family in INVERT:
        images = write_images(work / "inputs", 2, info.image_size, info.channels)
        run_cli(invert.main, [str(run), "--input", str(images), "--out", str(work / "inverted"), "--method", "encoder",
                              "--device", device])
        done.append("invert")
    if eval_num is not None:
        run_cli(eval_cli.main, [str(run), "--num", str(eval_num), "--device", device, "--no-write"])
        done.append("eval")
    return done


def run_cell(family: str, precision: str, args: argparse.Namespace, root: Path, extra: list[str],
             with_eval: bool, with_clis: bool) -> dict[str, Any]:
    """Train, sample, checkpoint at the midpoint, evaluate; resume from the midpoint; run the CLIs."""
    steps = args.steps
    mid = steps // 2
    device = torch.device(args.device)
    overrides = FAMILIES[family] + (QUICK[family] if args.quick else []) + COMMON + extra + [
        f"trainer.device={args.device}", f"trainer.precision={precision}", f"trainer.max_steps={steps}",
        f"trainer.ckpt_every={mid}", f"trainer.sample_every={mid}", f"trainer.log_every={steps}",
        f"trainer.num_threads={args.threads}" if args.device == "cpu" else "trainer.num_threads=null",
        f"eval.at_end={str(with_eval).lower()}", f"eval.num_samples={args.eval_num}",
    ] + ([] if with_eval else ["eval.metrics=[]"])
    if family in EMA_FAMILIES:
        overrides.append("trainer.ema.decay=0.9")
    tag = f"{family}-{precision}" + ("-compile" if "trainer.compile=true" in extra else "")
    run = root / tag
    shutil.rmtree(run, ignore_errors=True)
    cell: dict[str, Any] = {"family": family, "precision": precision, "compile": "trainer.compile=true" in extra}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    counter = SyncCounter(device)
    trainer = Trainer(compose(overrides), run)
    trainer.setup()
    plain = count_step_syncs(trainer, counter)
    with counter.installed():
        start = time.perf_counter()
        trainer.fit()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    cell["s_per_step"] = seconds / steps
    cell["syncs_per_step"] = sum(plain) / len(plain) if plain else None
    cell["peak_mem_mb"] = peak_memory_mb(device)
    samples = list((run / "samples").rglob("*.png"))
    if not samples:
        raise RuntimeError("no sample grid was written")
    midpoint = run / "checkpoints" / runs.snapshot_name(mid)
    resumed_dir = root / f"{tag}-resumed"
    shutil.rmtree(resumed_dir, ignore_errors=True)
    shutil.copytree(run, resumed_dir)
    resumed = Trainer(compose(overrides + ["eval.at_end=false", "eval.metrics=[]"]), resumed_dir)
    resumed.setup(runs.load_checkpoint(resumed_dir / "checkpoints" / midpoint.name))
    resumed.fit()
    # bitwise only where kernels are deterministic: on CUDA (cuDNN autotuning, atomics) the resumed run may differ
    cell["resume_exact"] = state_equal(trainer, resumed)
    if device.type == "cpu" and not cell["compile"] and not cell["resume_exact"]:
        raise RuntimeError("the run resumed from the midpoint differs from the uninterrupted one")
    cell["eval"] = with_eval and (run / "eval_last.json").is_file()
    if with_eval and not cell["eval"]:
        raise RuntimeError("the evaluation wrote no eval_last.json")
    cell["clis"] = run_clis(family, run, args.device, root / f"{tag}-cli", trainer.info,
                            args.eval_num if with_eval else None) if with_clis else []
    cell["run"] = str(run)
    return cell


def benchmark_cyclegan(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """CycleGAN at 256 px: the reference's train.py (seconds per iteration from 30- minus 10-iteration runs),
    gantrain's reference mode at fp32, its defaults and its fastest settings; batch 4 and 16 throughput;
    each row with peak memory and achieved TFLOP/s beside the measured dense bf16 matmul rate."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchmark_translation import bench, matmul_peak

    device = torch.device(args.device)
    size = 32 if args.quick else 256
    steps = 2 if args.quick else 50
    peak = matmul_peak(device, "bf16", n=256 if args.quick else 8192, reps=2 if args.quick else 20)
    rows = []
    settings = [("reference-mode fp32", dict(precision="32", reference=True, channels_last=False)),
                ("default", dict(precision="auto", reference=False, channels_last=False)),
                ("fastest (bf16, channels-last)", dict(precision="bf16", reference=False, channels_last=True))]
    for batch in (1,) if args.quick else (1, 4, 16):
        for name, kw in settings:
            if batch > 1 and name == "reference-mode fp32":
                continue
            precision = resolve_precision(kw["precision"], device)
            torch.backends.cudnn.benchmark = device.type == "cuda" and name != "reference-mode fp32"
            r = bench("cyclegan", size, batch, steps, device, precision, kw["reference"], kw["channels_last"])
            r.update(setting=name, batch=batch, images_per_s=batch / r["s_per_iter"],
                     achieved_tflops=r["achieved_gflops"] / 1000, bf16_matmul_tflops=peak["gflops"] / 1000)
            rows.append(r)
    if args.reference_dir:
        rows.append(reference_train_py(Path(args.reference_dir), root, size, args.quick, device))
    return rows


def reference_load(size: int) -> int:
    """The resize before the random `size` crop: size + size/8, rounded to even (143 -> 144 at 128 px, 286 -> 288 at 256)."""
    return size + size // 8 + (size // 8) % 2


def reference_train_cmd(data: Path, work: Path, n: int, size: int) -> tuple[list[str], dict[str, str]]:
    """The reference's train.py command (run it in the reference's folder) for n iterations of CycleGAN at batch 1,
    `size` crops of the unpaired folder `data`, with its environment: stubs for wandb and dominate, which it imports
    but does not use with --no_html (so neither needs installing beside torch)."""
    stub = work / "refstub"
    (stub / "dominate").mkdir(parents=True, exist_ok=True)
    (stub / "wandb.py").write_text('run = None\ndef init(*a, **k):\n    raise RuntimeError("wandb is not used here")\n')
    (stub / "dominate" / "__init__.py").write_text("def document(*a, **k):\n    raise RuntimeError('no HTML here')\n")
    (stub / "dominate" / "tags.py").write_text("meta = h3 = table = tr = td = p = a = img = br = None\n")
    cmd = [sys.executable, "train.py", "--dataroot", str(data), "--name", f"bench{n}", "--model", "cycle_gan",
           "--load_size", str(reference_load(size)), "--crop_size", str(size), "--n_epochs", "1", "--n_epochs_decay", "0",
           "--max_dataset_size", str(n), "--display_freq", "100000", "--print_freq", "100000", "--no_html",
           "--num_threads", "1", "--checkpoints_dir", str(work / "refck"), "--save_latest_freq", "100000",
           "--save_epoch_freq", "1000"]
    return cmd, {**os.environ, "PYTHONPATH": str(stub)}


def reference_train_py(ref: Path, root: Path, size: int, quick: bool, device: torch.device) -> dict[str, Any]:
    """The reference implementation's own train.py on a random unpaired folder: (t30 - t10) / 20 s/iteration."""
    data = root / "refdata"
    for split in ("trainA", "trainB", "testA", "testB"):
        write_images(data / split, 30, size + size // 8, 3, seed=hash(split) % 1000)
    times = {}
    counts = (2, 4) if quick else (10, 30)
    for n in counts:
        cmd, env = reference_train_cmd(data, root, n, size)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ref, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode:
            raise RuntimeError(f"reference train.py failed: {proc.stderr.strip().splitlines()[-1:]}")
        times[n] = time.perf_counter() - start
    per_iter = (times[counts[1]] - times[counts[0]]) / (counts[1] - counts[0])
    return {"setting": "reference train.py fp32", "batch": 1, "s_per_iter": per_iter, "images_per_s": 1 / per_iter}


def table(cells: list[dict[str, Any]]) -> str:
    lines = [f"{'family':<16}{'precision':<10}{'compile':<8}{'status':<8}{'s/step':>9}{'syncs/step':>12}{'peak MB':>10}  clis"]
    for c in cells:
        fmt = lambda v, f: (f.format(v) if isinstance(v, (int, float)) else "-")  # noqa: E731
        lines.append(f"{c['family']:<16}{c['precision']:<10}{'yes' if c.get('compile') else '':<8}{c['status']:<8}"
                     f"{fmt(c.get('s_per_step'), '{:.3f}'):>9}{fmt(c.get('syncs_per_step'), '{:.1f}'):>12}"
                     f"{fmt(c.get('peak_mem_mb'), '{:.0f}'):>10}  {','.join(c.get('clis', []))}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="tiny nets and few steps (the CPU test)")
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--precisions", default=",".join(PRECISIONS))
    p.add_argument("--steps", type=int, default=None, help="training steps per cell (default 6, quick 4)")
    p.add_argument("--eval-num", type=int, default=None, help="images per evaluation (default 200, quick 16)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (--device cpu)")
    p.add_argument("--reference-dir", default=None, help="the reference CycleGAN code (../shared/reference/...)")
    p.add_argument("--no-benchmark", action="store_true")
    p.add_argument("--out", default="acceptance.json")
    p.add_argument("--workdir", default=None, help="where runs go (default: a temporary folder)")
    args = p.parse_args(argv)
    args.steps = args.steps or (4 if args.quick else 6)
    args.eval_num = args.eval_num or (16 if args.quick else 200)
    families = [f for f in args.families.split(",") if f]
    unknown = set(families) - set(FAMILIES)
    if unknown:
        p.error(f"unknown families {sorted(unknown)}; choose from {', '.join(FAMILIES)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but no CUDA GPU is visible")
    root = Path(args.workdir or tempfile.mkdtemp(prefix="gantrain-acceptance-"))
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GANTRAIN_CACHE", str(root / "cache"))
    cells: list[dict[str, Any]] = []
    generator_run = None
    jobs = [(f, prec, []) for f in families for prec in args.precisions.split(",")]
    jobs += [(f, "bf16" if args.device == "cuda" else "32", ["trainer.compile=true"]) for f in COMPILE if f in families]
    start = time.perf_counter()
    for family, precision, extra in jobs:
        extra = list(extra)
        if family == "latent_encoder":
            if generator_run is None:
                cells.append({"family": family, "precision": precision, "status": "failed", "error": "needs the dcgan cell"})
                continue
            extra.append(f"model.generator={generator_run}")
        first = family == families[0] and precision == "32" and not extra
        with_eval = (not args.quick and precision == "32" and not extra) or first
        with_clis = precision == "32" and not extra
        try:
            cell = run_cell(family, precision, args, root, extra, with_eval, with_clis)
            cell["status"] = "ok"
            if family == "dcgan" and precision == "32" and not extra:
                generator_run = cell["run"]
        except Exception as exc:  # a failed cell is reported and the run goes on to the next
            cell = {"family": family, "precision": precision, "compile": bool(extra), "status": "failed",
                    "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=8)}
            print(f"[failed] {family} {precision} {' '.join(extra)}: {cell['error']}", file=sys.stderr, flush=True)
        cells.append(cell)
    bench_rows: list[dict[str, Any]] = []
    bench_error = None
    if not args.no_benchmark:
        try:
            bench_rows = benchmark_cyclegan(args, root)
        except Exception as exc:
            bench_error = f"{type(exc).__name__}: {exc}"
            print(f"[failed] benchmark: {bench_error}", file=sys.stderr)
    result = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch": torch.__version__, "quick": args.quick, "seconds": time.perf_counter() - start,
        "cells": cells, "benchmark": bench_rows, "benchmark_error": bench_error,
    }
    print(table(cells))
    for row in bench_rows:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}))
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    failed = [c for c in cells if c["status"] != "ok"]
    syncing = [c for c in cells if c["status"] == "ok" and (c.get("syncs_per_step") or 0) > 0 and c["precision"] != "16"]
    print(f"{len(cells) - len(failed)}/{len(cells)} cells ok; cells with syncs per step (not fp16): {len(syncing)}; "
          f"{result['seconds']:.0f} s; JSON: {args.out}")
    return 1 if failed or bench_error else 0


if __name__ == "__main__":
    sys.exit(main())
