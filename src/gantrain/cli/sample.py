"""`gantrain-sample RUN_DIR_OR_CHECKPOINT --out DIR [--num N | --labels 0,3,7|all --num-per-class N] [--seed S] [--grid]`:
PNGs from a trained generator.

Unconditional models write `DIR/00000.png ...`. Class-conditional models (cgan, acgan) write ImageFolder layout,
`DIR/<class name>/00000.png`, so the samples feed straight into other tools; `--grid` writes `DIR/grid.png` with
one row per class. Uses the EMA generator when the run kept one. The same seed gives the same images, and a
class's images do not depend on which other classes were asked for. Text-to-image runs also take
`--text`, `--captions-file` and `--interpolate` (see `gantrain.cli.sample_text`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from gantrain.cli.common import one_line_errors, setup_logging
from gantrain.data.images import save_png
from gantrain.errors import GantrainError
from gantrain.runs import load_trained

DEFAULT_NUM = 64
DEFAULT_PER_CLASS = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gantrain-sample", description=__doc__.splitlines()[0])
    p.add_argument("run", help="run directory (its newest valid checkpoint) or a checkpoint file")
    p.add_argument("--num", type=int, default=None, help=f"number of images, unconditional models (default {DEFAULT_NUM})")
    p.add_argument("--labels", default=None,
                   help="conditional models: comma-separated class names or indices (e.g. 0,3,7 or cat,dog), or 'all' (default)")
    p.add_argument("--num-per-class", type=int, default=None,
                   help=f"conditional models: images per requested class (default {DEFAULT_PER_CLASS})")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid", action="store_true", help="also write grid.png (conditional models: one row per class)")
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


def describe_classes(names: list[str], limit: int = 40) -> str:
    shown = ", ".join(f"{i}={n}" for i, n in enumerate(names[:limit]))
    return shown + (f", ... ({len(names)} classes)" if len(names) > limit else "")


def resolve_labels(spec: str | None, names: list[str]) -> list[int]:
    """Class indices for `--labels`: 'all', or names (matched first) and indices, comma-separated, in order given."""
    if spec is None or spec.strip().lower() == "all":
        return list(range(len(names)))
    by_name = {n: i for i, n in enumerate(names)}
    chosen, unknown = [], []
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        if token in by_name:
            index = by_name[token]
        elif token.lstrip("-").isdigit() and 0 <= int(token) < len(names):
            index = int(token)
        else:
            unknown.append(token)
            continue
        if index not in chosen:
            chosen.append(index)
    if unknown:
        raise GantrainError(
            f"unknown label(s) {', '.join(repr(u) for u in unknown)}; this model's classes are: {describe_classes(names)} "
            f"(pass names or indices, or --labels all)"
        )
    if not chosen:
        raise GantrainError(f"--labels {spec!r} names no class; classes are: {describe_classes(names)}")
    return chosen


def class_dir_names(names: list[str]) -> list[str]:
    """Folder names for classes: path separators become '_', and clashes or unusable names get the index."""
    out: list[str] = []
    for i, name in enumerate(names):
        safe = name.replace("/", "_").replace("\\", "_").strip()
        if safe in ("", ".", "..") or safe in out:
            safe = f"{safe}_{i}" if safe not in ("", ".", "..") else f"class_{i}"
        out.append(safe)
    return out


@torch.no_grad()
def sample_classes(model, nets, labels: list[int], per_class: int, seed: int, batch_size: int) -> torch.Tensor:
    """(len(labels) * per_class) images, class-major; class c's noise comes from its own seed (seed, c)."""
    chunks = []
    for c in labels:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + c)
        inputs = model.inputs_for_labels(torch.full((per_class,), c, dtype=torch.long), gen)
        for start in range(0, per_class, batch_size):
            part = {k: v[start : start + batch_size] for k, v in inputs.items()}
            chunks.append(model.generate(part, nets).float().cpu())
    return torch.cat(chunks)


@torch.no_grad()
def write_outputs(model, nets, num: int, seed: int, batch_size: int, out: Path) -> None:
    """Families whose `sample_outputs` returns named images per input (CoGAN pairs) write one folder per name."""
    gen = torch.Generator().manual_seed(seed)
    done = 0
    while done < num:
        k = min(batch_size, num - done)
        for name, images in model.sample_outputs(model.fixed_inputs(k, gen), nets).items():
            (out / name).mkdir(parents=True, exist_ok=True)
            for i, img in enumerate(images.float().cpu()):
                save_png(img, out / name / f"{done + i:05d}.png")
        done += k
    print(f"wrote {num} image sets to {out}")


def write_grid(images: torch.Tensor, nrow: int, path: Path) -> None:
    save_image(make_grid(images.add(1).div(2).clamp(0, 1), nrow=max(nrow, 1), padding=2), path)


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    import sys

    from gantrain.cli import sample_text

    if sample_text.wants_text(sys.argv[1:] if argv is None else argv):
        return sample_text.main(argv)

    from gantrain.models.conditional import ConditionalGANModel

    args = parse_args(argv)
    setup_logging()
    model, nets, ckpt, _ = load_trained(args.run, args.device, prefer_ema=not args.no_ema)
    out = Path(args.out)
    if not isinstance(model, ConditionalGANModel):
        if args.labels is not None or args.num_per_class is not None:
            raise GantrainError(
                f"model={ckpt['model_name']} is unconditional: --labels and --num-per-class need a class-conditional "
                f"model (cgan, acgan); use --num"
            )
        num = DEFAULT_NUM if args.num is None else args.num
        if num < 1:
            raise GantrainError(f"--num must be at least 1, got {num}")
        if hasattr(model, "sample_outputs"):  # several images per input (CoGAN pairs): DIR/<name>/00000.png
            write_outputs(model, nets, num, args.seed, args.batch_size, out)
            return
        images = sample(model, nets, num, args.seed, args.batch_size)
        out.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(images):
            save_png(img, out / f"{i:05d}.png")
        if args.grid:
            write_grid(images, int(num**0.5), out / "grid.png")
        print(f"wrote {len(images)} images to {out}")
        return
    if args.num is not None:
        raise GantrainError(f"model={ckpt['model_name']} is class-conditional: use --num-per-class N (and --labels), not --num")
    per_class = DEFAULT_PER_CLASS if args.num_per_class is None else args.num_per_class
    if per_class < 1:
        raise GantrainError(f"--num-per-class must be at least 1, got {per_class}")
    labels = resolve_labels(args.labels, model.class_names)
    images = sample_classes(model, nets, labels, per_class, args.seed, args.batch_size)
    folders = class_dir_names(model.class_names)
    for row, c in enumerate(labels):
        folder = out / folders[c]
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            save_png(images[row * per_class + i], folder / f"{i:05d}.png")
    if args.grid:
        write_grid(images, per_class, out / "grid.png")
    print(f"wrote {len(images)} images ({per_class} per class, {len(labels)} classes) to {out}")


if __name__ == "__main__":
    main()
