"""`gantrain-eval RUN_DIR_OR_CHECKPOINT [--metrics fid,kid,is] [--num N] [--split test] [eval.KEY=VALUE ...]`

Scores a trained generator and prints one JSON object: the metrics and their protocol (feature network and
weights hash, resize, reference split, numbers of real and generated images, seed, checkpoint step). The same
object is written beside the checkpoint as `<checkpoint stem>.eval.json`. Settings not given here come from
the run's own `eval` config; any `eval.*` key can be overridden (e.g. `eval.backbone=classifier`).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from omegaconf import OmegaConf

from gantrain.cli.common import load_trained, one_line_errors, setup_logging
from gantrain.errors import GantrainError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gantrain-eval", description=__doc__.splitlines()[0])
    p.add_argument("run", help="run directory (its newest valid checkpoint) or a checkpoint file (e.g. checkpoints/best.pt)")
    p.add_argument("--metrics", help="comma-separated names (default: the run's eval.metrics, else fid,kid,is)")
    p.add_argument("--num", type=int, help="generated images (default: the run's eval.num_samples)")
    p.add_argument("--split", help="reference split (default: the run's eval.split)")
    p.add_argument("--seed", type=int, help="sampling seed (default: the run's eval.seed)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-ema", action="store_true", help="score the raw generator even if an EMA copy exists")
    p.add_argument("--no-write", action="store_true", help="only print; do not write the JSON beside the checkpoint")
    p.add_argument("overrides", nargs="*", help="eval.KEY=VALUE settings (e.g. eval.backbone=classifier eval.num_real=5000)")
    return p.parse_intermixed_args(argv)


def eval_config(run_cfg, args: argparse.Namespace):
    """The run's config with the command line's eval settings applied, validated like a training config."""
    from gantrain.config.schema import validate_config

    cfg = OmegaConf.create(OmegaConf.to_container(run_cfg, resolve=True))
    bad = [o for o in args.overrides if "=" not in o or not o.startswith("eval.")]
    if bad:
        raise GantrainError(f"overrides must look like eval.KEY=VALUE, got {bad[0]!r}")
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(args.overrides))
    if args.metrics is not None:
        cfg.eval.metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    elif not cfg.eval.metrics:
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


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging()
    from gantrain.metrics.evaluator import Evaluator
    from gantrain.trainer.checkpoint import write_json_atomic
    from gantrain.trainer.runtime import resolve_device
    from gantrain.trainer.trainer import build_data

    model, nets, ckpt, path = load_trained(args.run, args.device, prefer_ema=not args.no_ema)
    cfg = eval_config(OmegaConf.create(ckpt["config"]), args)
    data = build_data(cfg)
    evaluator = Evaluator(cfg, data, data.info, resolve_device(args.device))
    with torch.no_grad():
        metrics = evaluator(model, nets, ckpt["step"])
    report = {
        "checkpoint": str(path),
        "step": ckpt["step"],
        "best_or_last": {"best": "best", "last": "last"}.get(path.stem, "snapshot"),
        "run_best": ckpt.get("best"),
        "model": cfg.model.name,
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
