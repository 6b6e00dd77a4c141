"""`gantrain-sample RUN_DIR_OR_CHECKPOINT --num N --out DIR [--seed S] [--grid]`: PNGs from a trained generator.

Uses the EMA generator when the run kept one. The same seed gives the same images. Text-to-image runs also take
`--text`, `--captions-file` and `--interpolate` (see `gantrain.cli.sample_text`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from gantrain.cli.common import load_trained, one_line_errors, setup_logging
from gantrain.data.images import save_png
from gantrain.errors import GantrainError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gantrain-sample", description=__doc__.splitlines()[0])
    p.add_argument("run", help="run directory (its newest valid checkpoint) or a checkpoint file")
    p.add_argument("--num", type=int, default=64, help="number of images (default 64)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid", action="store_true", help="also write grid.png")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-ema", action="store_true", help="use the raw generator even if an EMA copy exists")
    return p.parse_args(argv)


@torch.no_grad()
def sample(model, nets, num: int, seed: int, batch_size: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    chunks, done = [], 0
    while done < num:
        k = min(batch_size, num - done)
        chunks.append(model.generate(model.fixed_inputs(k, gen), nets).float().cpu())
        done += k
    return torch.cat(chunks)


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    import sys

    from gantrain.cli import sample_text

    if sample_text.wants_text(sys.argv[1:] if argv is None else argv):
        return sample_text.main(argv)
    args = parse_args(argv)
    setup_logging()
    if args.num < 1:
        raise GantrainError(f"--num must be at least 1, got {args.num}")
    model, nets, _, _ = load_trained(args.run, args.device, prefer_ema=not args.no_ema)
    images = sample(model, nets, args.num, args.seed, args.batch_size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        save_png(img, out / f"{i:05d}.png")
    if args.grid:
        save_image(make_grid(images.add(1).div(2).clamp(0, 1), nrow=max(int(args.num**0.5), 1), padding=2), out / "grid.png")
    print(f"wrote {len(images)} images to {out}")


if __name__ == "__main__":
    main()
