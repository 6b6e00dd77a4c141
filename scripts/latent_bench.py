"""Inversion benchmark: held-out digits and G(z) samples through a trained generator, each method.

    python scripts/latent_bench.py GENERATOR_RUN --encoder ENCODER_RUN --out DIR [--num 300] [--targets test,samples]

Writes DIR/test (the first --num test-split digits as PNGs), DIR/samples (G(z) from gantrain-sample), runs
gantrain-invert with each method at its defaults on both, and prints a Markdown table from metrics.json, with the
share of reconstructions the digits classifier puts in the class it gives the original ("class kept").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from gantrain.config.schema import group_config
from gantrain.data.digits import digits_split_indices, digits_uint8
from gantrain.data.images import decode_all, list_images, save_png
from gantrain.nets.classifier import classify, load_or_train
from gantrain.runs import build_data


def export_test_digits(folder: Path, num: int, image_size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    images, _ = digits_uint8(image_size)
    for i in digits_split_indices()["test"][:num]:
        save_png(images[i].float().div(127.5).sub(1), folder / f"{i:04d}.png")


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", *args], check=True)


def class_kept(classifier: torch.nn.Module, original: Path, recon: Path, image_size: int) -> float:
    """Share of reconstructions given the class the digits classifier gives their original."""
    def predict(folder: Path) -> torch.Tensor:
        images, _ = decode_all(list_images(folder), 1, image_size)
        return classify(classifier, images.float().div(127.5).sub(1), torch.device("cpu"))[1].argmax(1)

    return float((predict(original) == predict(recon)).float().mean())


def digits_classifier(image_size: int) -> torch.nn.Module:
    data = build_data(OmegaConf.create({"data": group_config("data", "digits", image_size=image_size), "seed": 0}))
    return load_or_train("digits", data.split("train"), data.split("test"), 1, 10, torch.device("cpu"))[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("generator")
    p.add_argument("--encoder", help="latent_encoder run for encoder/hybrid (default: the generator run's own E)")
    p.add_argument("--out", required=True)
    p.add_argument("--num", type=int, default=300)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--methods", default="encoder,hybrid,optimize")
    p.add_argument("--targets", default="test,samples")
    args = p.parse_args()
    out = Path(args.out)
    targets = args.targets.split(",")
    if "test" in targets:
        export_test_digits(out / "test", args.num, args.image_size)
    if "samples" in targets:
        cli("gantrain.cli.sample", args.generator, "--num", str(args.num), "--out", str(out / "samples"), "--seed", "1")
    classifier = digits_classifier(args.image_size)
    rows = []
    for target in targets:
        for method in args.methods.split(","):
            extra = ["--encoder", args.encoder] if args.encoder and method != "optimize" else []
            dest = out / f"inv_{target}_{method}"
            cli("gantrain.cli.invert", args.generator, "--input", str(out / target), "--out", str(dest), "--method", method, *extra)
            m = json.loads((dest / "metrics.json").read_text())
            kept = class_kept(classifier, out / target, dest, args.image_size)
            rows.append((target, method, m["num_images"], m["mean_mse"], m["mean_psnr"], kept, m["seconds_per_image"],
                         m["cpu_seconds_per_image"]))
    print("| images | method | n | MSE | PSNR (dB) | class kept | wall s/image | CPU s/image |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.4f} | {r[4]:.2f} | {r[5]:.3f} | {r[6]:.4f} | {r[7]:.4f} |")


if __name__ == "__main__":
    main()
