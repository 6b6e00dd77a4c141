"""Text-to-image sampling, reached through `gantrain-sample RUN --text ... | --captions-file F | --interpolate A B`.

`--text "a small red circle at the top left" --num-per-text N --out DIR` writes DIR/<000-slug>/00000.png ...
and DIR/prompts.json (folder -> caption). `--interpolate "caption one" "caption two" --steps K` writes
DIR/interpolation.png: K images along the straight line between the two caption embeddings, same z.
Words the text encoder has never seen are named in a warning (they are read as unknown).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from gantrain.cli.common import one_line_errors, setup_logging
from gantrain.data.images import save_png
from gantrain.errors import GantrainError
from gantrain.runs import load_trained

log = logging.getLogger("gantrain")
TEXT_FLAGS = ("--text", "--captions-file", "--interpolate")


def wants_text(argv: list[str]) -> bool:
    return any(a == f or a.startswith(f + "=") for a in argv for f in TEXT_FLAGS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gantrain-sample", description=__doc__.splitlines()[0])
    p.add_argument("run", help="run directory (its newest valid checkpoint) or a checkpoint file of a text-to-image model")
    p.add_argument("--text", action="append", default=[], help="a caption (repeat for several)")
    p.add_argument("--captions-file", help="a text file with one caption per line")
    p.add_argument("--num-per-text", type=int, default=8, help="images per caption (default 8)")
    p.add_argument("--interpolate", nargs=2, metavar=("CAPTION_A", "CAPTION_B"), help="write a strip between two captions")
    p.add_argument("--steps", type=int, default=8, help="images in the interpolation strip (default 8)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-ema", action="store_true", help="use the raw generator even if an EMA copy exists")
    return p.parse_args(argv)


def slug(text: str, max_len: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:max_len].rstrip("-") or "caption"


def read_captions(args: argparse.Namespace) -> list[str]:
    captions = [t.strip() for t in args.text]
    if args.captions_file:
        path = Path(args.captions_file)
        if not path.is_file():
            raise GantrainError(f"--captions-file {path} does not exist")
        captions += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if any(not c for c in captions):
        raise GantrainError("empty caption given to --text; write the caption in quotes")
    return captions


def embed(model, texts: list[str]) -> torch.Tensor:
    if not hasattr(model, "embed_texts"):
        raise GantrainError(f"the run was trained with model={model.cfg.name}, which does not take captions; "
                            "use a text-to-image run (model=gan_cls)")
    emb, unknown = model.embed_texts(texts)
    if unknown:
        log.warning("words the text encoder has never seen (read as unknown): %s", ", ".join(unknown))
    return emb


@torch.no_grad()
def generate(model, nets, emb: torch.Tensor, z: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([model.generate({"z": zc, "emb": ec}, nets).float().cpu()
                      for zc, ec in zip(z.split(batch_size), emb.split(batch_size))])


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging()
    captions = read_captions(args)
    if not captions and not args.interpolate:
        raise GantrainError("give --text CAPTION, --captions-file FILE or --interpolate A B")
    if args.num_per_text < 1 or args.steps < 2:
        raise GantrainError("--num-per-text must be at least 1 and --steps at least 2")
    model, nets, _, _ = load_trained(args.run, args.device, prefer_ema=not args.no_ema)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(args.seed)
    prompts: dict[str, str] = {}
    if captions:
        emb = embed(model, captions)
        n = args.num_per_text
        z = model.sample_z(len(captions) * n, gen)
        images = generate(model, nets, emb.repeat_interleave(n, 0), z, args.batch_size)
        for i, caption in enumerate(captions):
            folder = f"{i:03d}-{slug(caption)}"
            (out / folder).mkdir(exist_ok=True)
            for j in range(n):
                save_png(images[i * n + j], out / folder / f"{j:05d}.png")
            prompts[folder] = caption
    if args.interpolate:
        a, b = embed(model, list(args.interpolate))
        w = torch.linspace(0, 1, args.steps, device=a.device).view(-1, 1)
        emb = (1 - w) * a + w * b
        z = model.sample_z(1, gen).repeat(args.steps, 1)
        strip = generate(model, nets, emb, z, args.batch_size)
        save_image(make_grid(strip.add(1).div(2).clamp(0, 1), nrow=args.steps, padding=2), out / "interpolation.png")
        prompts["interpolation.png"] = f"{args.interpolate[0]} -> {args.interpolate[1]}"
    (out / "prompts.json").write_text(json.dumps(prompts, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {sum(1 for k in prompts if k != 'interpolation.png') * args.num_per_text} images"
          f"{' and an interpolation strip' if args.interpolate else ''} to {out}")


if __name__ == "__main__":
    main()
