"""`gantrain-eval RUN_DIR_OR_CHECKPOINT [--metrics fid,kid,is] [--num N] [--split test] [eval.KEY=VALUE ...]`

Scores a trained generator and prints one JSON object: the metrics and their protocol (feature network and
weights hash, resize, reference split, numbers of real and generated images, seed, checkpoint step). The same
object is written beside the checkpoint as `<checkpoint stem>.eval.json`. Settings not given here come from
the run's own `eval` config; any `eval.*` key can be overridden (e.g. `eval.backbone=classifier`).

`gantrain-eval --weights horse2zebra.pth --arch resnet_9blocks --data horse2zebra [--direction AtoB]` scores a
generator file saved by the CycleGAN reference (loaded as gantrain-translate --weights loads it) with the same
per-direction FID/KID as a run; `data.KEY=VALUE` overrides (e.g. `data.root=DIR`) are accepted then.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from gantrain.cli.common import one_line_errors, setup_logging
from gantrain.config.paths import config_dir
from gantrain.data.listing import LISTING_FILE, FolderListing
from gantrain.errors import GantrainError
from gantrain.io import write_json_atomic
from gantrain.runs import build_data, load_trained


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gantrain-eval", description=__doc__.splitlines()[0])
    p.add_argument("run", nargs="?", help="run directory (its newest valid checkpoint) or a checkpoint file (e.g. checkpoints/best.pt)")
    p.add_argument("--metrics", help="comma-separated names (default: the run's eval.metrics or its family's defaults, "
                   "else fid,kid,is; fid,kid with --weights)")
    p.add_argument("--num", type=int, help="generated images (default: the run's eval.num_samples)")
    p.add_argument("--split", help="reference split (default: the run's eval.split)")
    p.add_argument("--seed", type=int, help="sampling seed (default: the run's eval.seed)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-ema", action="store_true", help="score the raw generator even if an EMA copy exists")
    p.add_argument("--no-write", action="store_true", help="only print; do not write the JSON beside the checkpoint")
    p.add_argument("--weights", help="a generator state dict saved by the CycleGAN reference (instead of a run)")
    p.add_argument("--arch", default="resnet_9blocks", help="--weights architecture (as gantrain-translate)")
    p.add_argument("--norm", default="auto", choices=("auto", "instance", "batch", "none"), help="--weights norm layers")
    p.add_argument("--data", help="--weights: the dataset to score on (a data= config name, e.g. horse2zebra)")
    p.add_argument("--direction", default="AtoB", choices=("AtoB", "BtoA"), help="--weights: what the file translates")
    p.add_argument("overrides", nargs="*", help="eval.KEY=VALUE settings (e.g. eval.backbone=classifier eval.num_real=5000); "
                                               "with --weights also data.KEY=VALUE")
    args = p.parse_intermixed_args(argv)
    if args.weights and args.run and "=" in args.run:  # no run with --weights: the first KEY=VALUE landed in `run`
        args.overrides, args.run = [args.run, *args.overrides], None
    return args


def eval_config(run_cfg, args: argparse.Namespace):
    """The run's config with the command line's eval settings applied, validated like a training config."""
    from gantrain.config.schema import validate_config

    cfg = OmegaConf.create(OmegaConf.to_container(run_cfg, resolve=True))
    bad = [o for o in args.overrides if "=" not in o or not o.startswith("eval.")]
    if bad:
        raise GantrainError(f"overrides must look like eval.KEY=VALUE, got {bad[0]!r}")
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(args.overrides))
    if args.metrics is not None:  # exactly these: the data's default metrics are not added
        cfg.eval.metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
        cfg.eval.data_metrics = []
    elif cfg.eval.metrics == []:  # the run evaluated nothing (null: the family's default_metrics, as in training)
        cfg.eval.metrics = ["fid", "kid", "is"]
    if args.num is not None:
        if args.num < 2:
            raise GantrainError(f"--num must be at least 2, got {args.num}")
        cfg.eval.num_samples = args.num
    if args.split is not None:
        cfg.eval.split = args.split
    if args.seed is not None:
        cfg.eval.seed = args.seed
    return validate_config(cfg)


def weights_config(args: argparse.Namespace):
    """For `--weights`: the `--data` dataset's composed config (its eval defaults included), metrics fid,kid."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if not args.data:
        raise GantrainError("--weights needs --data NAME, the dataset to score on (e.g. --data horse2zebra)")
    data_overrides = [o for o in args.overrides if o.startswith("data.")]
    args.overrides = [o for o in args.overrides if not o.startswith("data.")]
    # model=cyclegan only completes the config; the model scored is the --weights generator
    overrides = ["model=cyclegan", f"data={args.data}", *data_overrides]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(config_name="train", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise GantrainError(f"--data {args.data} with {data_overrides}: {str(exc).strip().splitlines()[0]}") from None
    finally:
        GlobalHydra.instance().clear()
    if args.metrics is None:
        args.metrics = "fid,kid"
    return eval_config(cfg, args)


def run_listing(checkpoint: Path) -> FolderListing:
    """The file lists stored by the run that wrote `checkpoint` (read only), so a run is scored on the split
    it was trained beside even when files were added to its folders since; none outside a run directory."""
    listing = checkpoint.parent.parent / LISTING_FILE if checkpoint.parent.name == "checkpoints" else None
    return FolderListing(listing, write=False)


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging()
    from gantrain.metrics.evaluator import Evaluator
    from gantrain.runtime import resolve_device

    device = resolve_device(args.device)
    if args.weights:
        from gantrain.cli.translate import ReferenceTranslator, load_reference_generator
        from gantrain.metrics.inception import sha256_file

        if args.run:
            raise GantrainError("give either a run (RUN_DIR_OR_CHECKPOINT) or --weights, not both")
        cfg = weights_config(args)
        model = ReferenceTranslator(load_reference_generator(args.weights, args.arch, args.norm, device), args.direction, args.arch)
        nets, step, path = None, None, Path(args.weights)
        source = {"weights": str(path), "weights_sha256": sha256_file(path), "arch": args.arch, "direction": args.direction,
                  "step": None}
    else:
        if not args.run:
            raise GantrainError("name a run directory or checkpoint, or pass --weights FILE --arch ARCH --data NAME")
        model, nets, ckpt, path = load_trained(args.run, args.device, prefer_ema=not args.no_ema)
        cfg = eval_config(OmegaConf.create(ckpt["config"]), args)
        step = ckpt["step"]
        source = {"checkpoint": str(path), "step": step,
                  "best_or_last": {"best": "best", "last": "last"}.get(path.stem, "snapshot"), "run_best": ckpt.get("best")}
    data = build_data(cfg, listing=run_listing(path))
    evaluator = Evaluator(cfg, data, model, device)
    with torch.no_grad():
        metrics = evaluator(nets, step or 0)
    evaluator.protocol["step"] = step  # None for a weights file: it has no training step
    report = {
        **source,
        "model": model.cfg.name,
        "data": cfg.data.name,
        "metrics": metrics,
        "protocol": evaluator.protocol,
    }
    if not args.no_write:
        out = path.with_name(f"{path.stem}.eval.json")
        write_json_atomic(report, out)
        report["written_to"] = str(out)
    json.dump(report, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
