"""`gantrain-invert RUN_DIR_OR_CHECKPOINT --input DIR --out DIR --method optimize|encoder|hybrid`: GAN inversion.

Finds latents z with G(z) close to each image of DIR and writes the reconstructions (same relative file
names), `latents.npy` (one row per image, sorted file-name order), `latents.json` (those file names and the
settings) and `metrics.json` (per-image and mean MSE and PSNR on [0, 1] images, wall and CPU seconds per image).
`encoder`/`hybrid` use the run's own encoder (BiGAN, latent_encoder) or the one of `--encoder RUN`. Each method's
defaults are `gantrain.inversion.DEFAULTS` (hybrid: IDInvert's); a flag left out keeps its method's default.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from gantrain.cli.common import one_line_errors, setup_logging
from gantrain.data.images import decode_all, list_images, save_png
from gantrain.errors import GantrainError
from gantrain.inversion import DEFAULTS, KEEP_PRIOR, METHODS, InversionSettings, invert, latent_of, reconstruction_error
from gantrain.nets.features import FEATURES, FeatureNet, build_features
from gantrain.runs import build_data, load_trained

log = logging.getLogger("gantrain.invert")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gantrain-invert", description=__doc__.splitlines()[0])
    opt, hyb = DEFAULTS["optimize"], DEFAULTS["hybrid"]
    p.add_argument("run", help="run directory (its newest valid checkpoint) or a checkpoint file of an unconditional generator")
    p.add_argument("--input", required=True, help="folder of images to invert (searched recursively)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--method", choices=METHODS, default="hybrid")
    p.add_argument("--encoder", help="run with the encoder for encoder/hybrid (default: the run's own E)")
    p.add_argument("--steps", type=int, help=f"Adam steps (default {opt.steps} for optimize, {hyb.steps} for hybrid)")
    p.add_argument("--lr", type=float, help=f"Adam learning rate (default {opt.lr} for optimize, {hyb.lr} for hybrid)")
    p.add_argument("--restarts", type=int, help=f"random starts per image (optimize, default {opt.restarts}); the best is kept")
    p.add_argument("--lambda-dom", type=float, help=f"hybrid: weight of ||z - E(G(z))||^2 (default {hyb.lambda_dom})")
    p.add_argument("--features", choices=FEATURES,
                   help="F of the perceptual term ||F(x) - F(G(z))||^2 (optimize/hybrid): the dataset classifier's trunk "
                        "(trained and cached on first use), torchvision's VGG16 conv4_3 (downloaded on first use), auto "
                        f"(the classifier where the run's data has one, else none) or none; default {hyb.features} for "
                        f"hybrid, {opt.features} for optimize, classifier when only --feature-weight is given")
    p.add_argument("--feature-weight", type=float, help="weight of the perceptual term (default: the F's own, nets/features.py)")
    p.add_argument("--keep-prior", choices=KEEP_PRIOR,
                   help=f"keep z on the prior: clip, resample out-of-range coordinates, or none (default {opt.keep_prior} for "
                        f"optimize, {hyb.keep_prior} for encoder and hybrid, as IDInvert)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-ema", action="store_true", help="use the raw generator even if an EMA copy exists")
    return p.parse_args(argv)


def settings_of(args: argparse.Namespace) -> InversionSettings:
    """The method's defaults with what the command line sets (`feature_weight` is set once F is built). A bare
    --feature-weight keeps the meaning it had before --features: the dataset classifier's features."""
    given = {k: getattr(args, k) for k in ("steps", "lr", "restarts", "lambda_dom", "keep_prior", "features")}
    if args.feature_weight and args.features is None:
        given["features"] = "classifier"
    if args.method == "encoder":
        given["features"] = "none"  # one forward pass: no loss, no F
    return replace(DEFAULTS[args.method], **{k: v for k, v in given.items() if v is not None})


def feature_net(ckpt: dict, kind: str, device: torch.device) -> FeatureNet:
    """F for the perceptual term, for the run's own data (rebuilt from its stored config)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(ckpt["config"])
    data = None
    if kind in ("auto", "classifier"):
        try:
            data = build_data(cfg)
        except GantrainError as exc:
            if kind == "classifier":
                raise
            log.info("the run's data (data=%s) cannot be loaded here (%s)", cfg.data.name, exc)
    return build_features(kind, data, device, cfg.eval.classifier_cache)


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
    settings = settings_of(args)
    feats = feature_net(ckpt, settings.features, model.rt.device)
    settings.feature_weight = feats.weight(args.feature_weight)
    features = feats.fn if settings.feature_weight > 0 else None
    if args.method != "encoder":
        log.info("%s%s", feats.description, f", weight {settings.feature_weight:g}" if features is not None else "")
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
             "z_dist": latent.z_dist, **asdict(settings), "feature_net": feats.kind if features is not None else "none",
             "seed": args.seed, "device": str(device)}
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
