"""Inversion benchmark: held-out digits and G(z) samples through a trained generator, each method.

    python scripts/latent_bench.py GENERATOR_RUN --encoder ENCODER_RUN --out DIR [--num 300]

Writes DIR/test (the first --num test-split digits as PNGs), DIR/samples (G(z) from gantrain-sample), runs
gantrain-invert with each method at its defaults on both, and prints a Markdown table from metrics.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from gantrain.data.digits import digits_split_indices, digits_uint8
from gantrain.data.images import save_png


def export_test_digits(folder: Path, num: int, image_size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    images, _ = digits_uint8(image_size)
    for i in digits_split_indices()["test"][:num]:
        save_png(images[i].float().div(127.5).sub(1), folder / f"{i:04d}.png")


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", *args], check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("generator")
    p.add_argument("--encoder", help="latent_encoder run for encoder/hybrid (default: the generator run's own E)")
    p.add_argument("--out", required=True)
    p.add_argument("--num", type=int, default=300)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--methods", default="encoder,hybrid,optimize")
    args = p.parse_args()
    out = Path(args.out)
    export_test_digits(out / "test", args.num, args.image_size)
    cli("gantrain.cli.sample", args.generator, "--num", str(args.num), "--out", str(out / "samples"), "--seed", "1")
    rows = []
    for target in ("test", "samples"):
        for method in args.methods.split(","):
            extra = ["--encoder", args.encoder] if args.encoder and method != "optimize" else []
            dest = out / f"inv_{target}_{method}"
            cli("gantrain.cli.invert", args.generator, "--input", str(out / target), "--out", str(dest), "--method", method, *extra)
            m = json.loads((dest / "metrics.json").read_text())
            rows.append((target, method, m["num_images"], m["mean_mse"], m["mean_psnr"], m["seconds_per_image"], m["cpu_seconds_per_image"]))
    print("| images | method | n | MSE | PSNR (dB) | wall s/image | CPU s/image |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.4f} | {r[4]:.2f} | {r[5]:.4f} | {r[6]:.4f} |")


if __name__ == "__main__":
    main()
