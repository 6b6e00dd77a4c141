"""`gantrain-translate RUN_DIR_OR_CHECKPOINT --input PATH --out DIR [--direction AtoB|BtoA]`: translate images.

Every image under PATH (a file or a folder, searched recursively) is translated, none skipped silently; each
output keeps its file name, relative folder and size (inputs are padded to what the network needs and cropped
back), with the target domain's channel count. Generator files saved by the CycleGAN reference
(`latest_net_G_A.pth`, the model-zoo `horse2zebra.pth`, ...) work with `--weights FILE --arch resnet_9blocks`.
Runs in fp32 unless `--precision bf16|16`.
"""

from __future__ import annotations

import argparse
import logging
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from gantrain.cli.common import one_line_errors, setup_logging
from gantrain.data.images import IMAGE_SUFFIXES, list_images, open_image
from gantrain.errors import GantrainError
from gantrain.nets.generators import NET_G, build_generator, size_multiple
from gantrain.runs import load_trained
from gantrain.runtime import Runtime, resolve_device, resolve_precision

log = logging.getLogger("gantrain")

Translator = Callable[[torch.Tensor], torch.Tensor]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gantrain-translate", description=__doc__.splitlines()[0])
    p.add_argument("run", nargs="?", help="run directory (its newest valid checkpoint) or a checkpoint file")
    p.add_argument("--input", required=True, help="an image file or a folder of images (searched recursively)")
    p.add_argument("--out", required=True, help="output folder (file names and subfolders are kept)")
    p.add_argument("--direction", default="AtoB", choices=("AtoB", "BtoA"))
    p.add_argument("--weights", help="a generator state dict saved by the CycleGAN reference (instead of a run)")
    p.add_argument("--arch", default="resnet_9blocks", help=f"--weights architecture: {', '.join(NET_G)}")
    p.add_argument("--norm", default="auto", choices=("auto", "instance", "batch", "none"),
                   help="--weights norm layers (auto: batch if the file holds batch-norm statistics, else instance)")
    p.add_argument("--resize", type=int, default=None,
                   help="resize inputs to NxN first and keep that size (the reference's test preprocessing)")
    p.add_argument("--precision", default="32", choices=("32", "bf16", "16"))
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-ema", action="store_true", help="use the raw generators even if EMA copies exist")
    return p.parse_args(argv)


def clean_reference_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip DDP/compile prefixes and the stale InstanceNorm statistics of pre-0.4 files (as the reference does)."""
    out = {}
    for key, value in sd.items():
        for prefix in ("module.", "_orig_mod."):
            while key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    stale = [k for k in out if k.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")
             and k.rsplit(".", 1)[0] + ".weight" not in out]
    for k in stale:
        del out[k]
    return out


def load_reference_generator(path: str, arch: str, norm: str, device: torch.device) -> nn.Module:
    """A reference generator file -> our module with the same layout (strict load, clear errors)."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GantrainError(f"--weights {path} does not exist") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error here
        raise GantrainError(f"--weights {path} is not a readable PyTorch state dict ({str(exc).splitlines()[0]})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
        raise GantrainError(f"--weights {path} is not a plain generator state dict")
    sd = clean_reference_state_dict(sd)
    convs = [k for k, v in sd.items() if k.endswith(".weight") and v.dim() == 4]
    if not convs:
        raise GantrainError(f"--weights {path} holds no convolution weights; is it a generator file?")
    first, last = sd[convs[0]], sd[convs[-1]]
    in_ch, ngf = first.shape[1], first.shape[0]
    # the last layer is a Conv2d (out, in, k, k) for ResNet, a ConvTranspose2d (in, out, k, k) for U-Net
    out_ch = last.shape[1] if arch.startswith("unet") else last.shape[0]
    if norm == "auto":
        norm = "batch" if any(k.endswith(".running_mean") for k in sd) else "instance"
    dropout = any(".conv_block.6." in k for k in sd)
    net = build_generator(arch, in_ch, out_ch, ngf, norm, dropout)
    try:
        missing, unexpected = net.load_state_dict(sd, strict=False)
    except RuntimeError:  # same keys, other shapes
        missing, unexpected = ["(shape mismatch)"], []
    if missing or unexpected:
        raise GantrainError(
            f"--weights {path} does not fit --arch {arch} (norm {norm}): missing keys {list(missing)[:3]}, "
            f"unexpected {list(unexpected)[:3]}; try another --arch (resnet_9blocks, resnet_6blocks, unet_256) or --norm"
        )
    return net.to(device).eval()


class ReferenceTranslator:
    """A `--weights` generator seen as a one-directional translation model, so the metrics score it like a run."""

    def __init__(self, net: nn.Module, direction: str, arch: str) -> None:
        self.net, self.directions, self.cfg = net, (direction,), SimpleNamespace(name=f"reference {arch}")

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str, nets: nn.ModuleDict | None = None) -> torch.Tensor:
        if direction not in self.directions:
            raise GantrainError(f"--weights translates {self.directions[0]} (--direction), not {direction}")
        return self.net(x).float()


def _pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


def _save(image: torch.Tensor, path: Path) -> None:
    arr = image.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).cpu().permute(1, 2, 0).numpy()
    im = Image.fromarray(arr[:, :, 0], mode="L") if arr.shape[2] == 1 else Image.fromarray(np.ascontiguousarray(arr))
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    im.save(path, **kwargs)


def translate_files(files: list[Path], base: Path, out: Path, fn: Translator, in_channels: int, multiple: int,
                    batch_size: int, device: torch.device, resize: int | None) -> int:
    """Translate `files` in batches of equal padded size; returns how many were written."""
    groups: dict[tuple[int, int], list[tuple[Path, torch.Tensor]]] = defaultdict(list)
    for path in files:
        im = open_image(path, in_channels)
        if resize:
            im = im.resize((resize, resize), Image.BICUBIC)
        arr = np.asarray(im, dtype=np.uint8)
        arr = arr[:, :, None] if arr.ndim == 2 else arr
        x = torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(127.5).sub(1)
        groups[tuple(x.shape[-2:])].append((path, x))
    written = 0
    for items in groups.values():
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            x, h, w = _pad_to(torch.stack([t for _, t in chunk]).to(device), multiple)
            y = fn(x)[..., :h, :w]
            for (path, _), img in zip(chunk, y):
                rel = path.relative_to(base) if path != base else Path(path.name)
                _save(img, out / rel)
                written += 1
    return written


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging()
    src = Path(args.input).expanduser()
    if not src.exists():
        raise GantrainError(f"--input {src} does not exist")
    if src.is_file():
        if src.suffix.lower() not in IMAGE_SUFFIXES:
            raise GantrainError(f"--input {src} is not an image ({', '.join(sorted(IMAGE_SUFFIXES))})")
        files, base = [src], src.parent
    else:
        files, base = list_images(src), src
        if not files:
            raise GantrainError(f"--input {src} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if args.batch_size < 1:
        raise GantrainError(f"--batch-size must be at least 1, got {args.batch_size}")
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(precision)

    def autocast():
        return torch.autocast(device.type, dtype=dtype) if dtype is not None else torch.autocast(device.type, enabled=False)

    if args.weights:
        if args.run:
            raise GantrainError("give either a run (RUN_DIR_OR_CHECKPOINT) or --weights, not both")
        net = load_reference_generator(args.weights, args.arch, args.norm, device)
        in_channels = next(m for m in net.modules() if isinstance(m, nn.Conv2d)).in_channels
        multiple = size_multiple(net)

        @torch.no_grad()
        def fn(x: torch.Tensor) -> torch.Tensor:
            with autocast():
                return net(x).float()
    else:
        if not args.run:
            raise GantrainError("name a run directory or checkpoint, or pass --weights FILE --arch ARCH")
        model, nets, _, _ = load_trained(args.run, args.device, prefer_ema=not args.no_ema)
        if not hasattr(model, "translate"):
            raise GantrainError(f"the run trained model={model.cfg.name}, which does not translate images; use gantrain-sample")
        model.rt = Runtime(model.rt.device, precision)
        in_channels = model.channels_A if args.direction == "AtoB" else model.channels_B
        multiple = model.size_multiple(args.direction)

        @torch.no_grad()
        def fn(x: torch.Tensor) -> torch.Tensor:
            return model.translate(x, args.direction, nets)

    out = Path(args.out)
    n = translate_files(files, base, out, fn, in_channels, multiple, args.batch_size, device, args.resize)
    print(f"translated {n} image(s) {args.direction} into {out}")


if __name__ == "__main__":
    main()
