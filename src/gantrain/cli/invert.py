"""`gantrain-invert RUN_DIR_OR_CHECKPOINT --input DIR --out DIR --method optimize|encoder|hybrid`: GAN inversion.

Finds latents z with G(z) close to each image of DIR and writes the reconstructions (same relative file
names), `latents.npy` (one row per image, sorted file-name order), `latents.json` (those file names and the
settings) and `metrics.json` (per-image and mean MSE and PSNR on [0, 1] images, wall and CPU seconds per image).
`encoder`/`hybrid` use the run's own encoder (BiGAN, latent_encoder) or the one of `--encoder RUN`.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from gantrain.cli.common import one_line_errors, setup_logging
from gantrain.data.images import decode_all, list_images, save_png
from gantrain.errors import GantrainError
from gantrain.inversion import KEEP_PRIOR, METHODS, InversionSettings, invert, latent_of, reconstruction_error
from gantrain.runs import build_data, load_trained

DEFAULTS = InversionSettings()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gantrain-invert", description=__doc__.splitlines()[0])
    p.add_argument("run", help="run directory (its newest valid checkpoint) or a checkpoint file of an unconditional generator")
    p.add_argument("--input", required=True, help="folder of images to invert (searched recursively)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--method", choices=METHODS, default="hybrid")
    p.add_argument("--encoder", help="run with the encoder for encoder/hybrid (default: the run's own E)")
    p.add_argument("--steps", type=int, default=None, help=f"Adam steps (default {DEFAULTS.steps} for optimize, 50 for hybrid)")
    p.add_argument("--lr", type=float, default=DEFAULTS.lr)
    p.add_argument("--restarts", type=int, default=DEFAULTS.restarts, help="random starts per image (optimize); the best is kept")
    p.add_argument("--lambda-dom", type=float, default=DEFAULTS.lambda_dom, help="hybrid: weight of ||z - E(G(z))||^2")
    p.add_argument("--feature-weight", type=float, default=DEFAULTS.feature_weight,
                   help="optimize/hybrid: add this weight x ||F(x) - F(G(z))||^2, F = the dataset classifier's features "
                        "(a perceptual term for digit-like data; trained and cached on first use)")
    p.add_argument("--keep-prior", choices=KEEP_PRIOR, default=DEFAULTS.keep_prior,
                   help="keep z on the prior: clip, resample out-of-range coordinates, or none")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-ema", action="store_true", help="use the raw generator even if an EMA copy exists")
    return p.parse_args(argv)


HYBRID_STEPS = 50


def classifier_features(ckpt: dict, device: torch.device):
    """F for the perceptual term: the trunk of the run's dataset classifier (`metrics.classifier`), frozen."""
    from omegaconf import OmegaConf

    from gantrain.data.base import InMemoryImages
    from gantrain.metrics.classifier import load_or_train

    cfg = OmegaConf.create(ckpt["config"])
    data = build_data(cfg)
    train, test = data.split("train"), data.split(cfg.eval.split)
    if not isinstance(train, InMemoryImages) or not isinstance(test, InMemoryImages) or data.info.num_classes < 2:
        raise GantrainError(f"--feature-weight needs a labelled in-memory dataset for its classifier; data={data.info.name} is not one")
    net, _ = load_or_train(data.info.name, train, test, data.info.channels, data.info.num_classes, device, cfg.eval.classifier_cache)
    net.eval().requires_grad_(False)
    return lambda x: net.trunk(x)


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging()
    folder = Path(args.input).expanduser()
    if not folder.is_dir():
        raise GantrainError(f"--input {args.input} is not a folder; point it at a folder of images")
    files = list_images(folder)
    if not files:
        raise GantrainError(f"--input {args.input} holds no images (.png, .jpg, ...)")
    if args.batch_size < 1:
        raise GantrainError(f"--batch-size must be at least 1, got {args.batch_size}")
    model, nets, ckpt, _ = load_trained(args.run, args.device, prefer_ema=not args.no_ema)
    encoder_model = load_trained(args.encoder, args.device, prefer_ema=not args.no_ema).model if args.encoder else None
    latent = latent_of(model, nets, encoder_model)
    steps = args.steps if args.steps is not None else (HYBRID_STEPS if args.method == "hybrid" else DEFAULTS.steps)
    settings = InversionSettings(steps=steps, lr=args.lr, restarts=args.restarts, lambda_dom=args.lambda_dom,
                                 feature_weight=args.feature_weight, keep_prior=args.keep_prior)
    features = classifier_features(ckpt, model.rt.device) if args.feature_weight > 0 else None
    images, bad = decode_all(files, model.info.channels, model.info.image_size)
    if bad:
        raise GantrainError(f"cannot read {files[bad[0]]} (and {len(bad) - 1} more); remove or fix the file(s)")
    x_all = images.float().div(127.5).sub(1.0)
    device = model.rt.device
    gen = torch.Generator().manual_seed(args.seed)
    zs, recons = [], []
    start, cpu_start = time.perf_counter(), time.process_time()
    for chunk in x_all.split(args.batch_size):
        z = invert(latent, chunk.to(device), args.method, settings, gen, features)
        with torch.no_grad():
            recons.append(latent.G(z).float().cpu())
        zs.append(z.cpu())
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    z_all, recon_all = torch.cat(zs), torch.cat(recons)
    mse, psnr = reconstruction_error(x_all, recon_all)
    out = Path(args.out).expanduser()
    names = [str(p.relative_to(folder)) for p in files]
    for name, img in zip(names, recon_all):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        save_png(img, out / name)
    np.save(out / "latents.npy", z_all.numpy().astype(np.float32))
    setup = {"method": args.method, "run": str(args.run), "encoder": args.encoder, "z_dim": latent.z_dim,
             "z_dist": latent.z_dist, **asdict(settings), "seed": args.seed, "device": str(device)}
    (out / "latents.json").write_text(json.dumps({"files": names, **setup}, indent=1))
    metrics = {
        **setup,
        "num_images": len(names),
        "mean_mse": float(mse.mean()),
        "mean_psnr": float(psnr.mean()),
        "seconds_per_image": seconds / len(names),
        "total_seconds": seconds,
        "cpu_seconds_per_image": cpu_seconds / len(names),  # process CPU time: comparable on a shared machine
        "mse_scale": "images in [0, 1]",
        "per_image": [{"file": n, "mse": float(m), "psnr": float(q)} for n, m, q in zip(names, mse, psnr)],
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print(f"inverted {len(names)} images with {args.method}: mean MSE {metrics['mean_mse']:.5f}, "
          f"PSNR {metrics['mean_psnr']:.2f} dB, {metrics['seconds_per_image']:.4f} s/image; wrote {out}")


if __name__ == "__main__":
    main()
