"""Image file IO for every dataset and CLI: listing, decoding (any common mode), the deterministic resizes,
decoding many files in threads, and saving.

Two decoders, as the datasets have always read their files: `load_image` (centre square + resize, for the
single-domain sets) and `decode_array` (the CycleGAN reference's `preprocess` resizes, for the translation sets).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from gantrain.errors import GantrainError

log = logging.getLogger(__name__)
T = TypeVar("T")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}  # either case
PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
UNREADABLE = (OSError, UnidentifiedImageError, ValueError, SyntaxError)  # what a bad file raises when decoded


def read_rgb_jpeg(path: Path, channels: int) -> Image.Image | None:
    """An RGB JPEG decoded by torchvision (libjpeg-turbo via `decode_jpeg`: 1.5x PIL's decode on this machine,
    bit-identical pixels, see BENCHMARKS.md), as a PIL image for the resizes; None for anything else.

    JPEG is recognised by its magic bytes, not the file name: datasets ship PNGs named .jpg, which PIL reads."""
    if channels != 3 or path.suffix.lower() not in (".jpg", ".jpeg"):
        return None
    from torchvision.io import ImageReadMode, decode_jpeg

    data = path.read_bytes()
    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        x = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except RuntimeError as exc:
        raise OSError(f"cannot decode JPEG: {exc}") from None
    return Image.fromarray(x.permute(1, 2, 0).numpy())


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (N, C, H, W) uint8 images to size x size (antialiased when shrinking)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = []
    for chunk in images.split(4096):
        x = F.interpolate(chunk.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def list_images(folder: Path) -> list[Path]:
    """Image files under `folder`, recursively, sorted; extensions in either case."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_image(path: Path, channels: int, size: int | None = None, square: bool = True) -> np.ndarray:
    """Decode one file to an (H, W, C) uint8 array; centre-crop to a square and resize when asked."""
    fast = read_rgb_jpeg(path, channels)
    with fast if fast is not None else Image.open(path) as im:
        im.load()
        im = im.convert("L" if channels == 1 else "RGB")
        if square:
            w, h = im.size
            s = min(w, h)
            im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.BICUBIC)
        arr = np.array(im, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def load_tensor(path: Path, channels: int, size: int) -> torch.Tensor:
    """One file as a (C, size, size) uint8 tensor, exactly as `decode_all` decodes it (for streaming)."""
    return torch.from_numpy(load_image(path, channels, size)).permute(2, 0, 1).contiguous()


def decode_many(items: list[Any], decode: Callable[[Any], T], where: str, workers: int = 8) -> tuple[list[T], list[int]]:
    """`decode` every item in threads; unreadable items are logged and skipped, their positions returned."""

    def one(item: Any) -> T | None:
        try:
            return decode(item)
        except UNREADABLE as exc:
            log.warning("skipping unreadable image %s (%s)", item, exc)
            return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, items))
    bad = [i for i, r in enumerate(results) if r is None]
    if bad:
        log.warning("%s: skipped %d unreadable image(s) of %d", where, len(bad), len(items))
    return [r for r in results if r is not None], bad


def decode_all(paths: list[Path], channels: int, size: int, where: str = "images") -> tuple[torch.Tensor, list[int]]:
    """`load_image` of every file, stacked; unreadable or truncated files are skipped and their positions returned."""
    kept, bad = decode_many(paths, partial(load_image, channels=channels, size=size), where)
    if not kept:
        return torch.empty(0, channels, size, size, dtype=torch.uint8), bad
    return torch.from_numpy(np.stack(kept)).permute(0, 3, 1, 2).contiguous(), bad


# ---------------------------------------------------------------------------------------------- translation sets
def open_image(path: Path, channels: int) -> Image.Image:
    """Decode any common mode (grey, RGBA, palette, 16-bit, CMYK) to 8-bit 'L' or 'RGB'."""
    fast = read_rgb_jpeg(path, channels)
    if fast is not None:
        return fast
    with Image.open(path) as im:
        im.load()
        if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            arr = np.asarray(im, dtype=np.float64)
            top = 65535.0 if im.mode != "I" or arr.max() > 255 else 255.0
            im = Image.fromarray((arr / top * 255.0).round().clip(0, 255).astype(np.uint8), mode="L")
        elif im.mode == "F":
            arr = np.asarray(im, dtype=np.float64)
            im = Image.fromarray((arr.clip(0, 1) * 255.0).round().astype(np.uint8), mode="L")
        elif im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            white = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, im)
        return im.convert("L" if channels == 1 else "RGB")


def _round4(v: int) -> int:
    return max(4, int(round(v / 4)) * 4)


def preprocess_image(im: Image.Image, preprocess: str, load_size: int, crop_size: int) -> Image.Image:
    """The deterministic part of the reference's transforms (resizes); random crops happen per batch."""
    if preprocess == "resize_and_crop":
        im = im.resize((load_size, load_size), Image.BICUBIC)
    elif preprocess in ("scale_width", "scale_width_and_crop"):
        w, h = im.size
        if not (w == load_size and h >= crop_size):
            h = max(int(load_size * h / w), crop_size)
            im = im.resize((load_size, h), Image.BICUBIC)
    if preprocess in ("none", "scale_width"):
        w, h = im.size
        if (w % 4, h % 4) != (0, 0):
            im = im.resize((_round4(w), _round4(h)), Image.BICUBIC)
    return im


def to_hwc(im: Image.Image) -> np.ndarray:
    """A PIL image as an (H, W, C) uint8 array (a writable copy), grey images included."""
    arr = np.array(im, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def decode_array(path: Path, channels: int, preprocess: str, load_size: int, crop_size: int) -> np.ndarray:
    """One file decoded and preprocessed to an (H, W, C) uint8 array (raises if unreadable)."""
    return to_hwc(preprocess_image(open_image(path, channels), preprocess, load_size, crop_size))


def decode_file(path: Path, channels: int, preprocess: str, load_size: int, crop_size: int) -> torch.Tensor:
    """`decode_array` as a (C, H, W) tensor: what a streamed split reads per item."""
    return torch.from_numpy(decode_array(path, channels, preprocess, load_size, crop_size)).permute(2, 0, 1).contiguous()


def check_decoded(shapes: set[tuple[int, ...]], preprocess: str, crop_size: int, where: str) -> None:
    """One size after preprocessing, no smaller than the crop: else one line saying which setting to change."""
    if len(shapes) > 1:
        shown = ", ".join(f"{s[-1]}x{s[-2]}" for s in sorted(shapes)[:3])
        raise GantrainError(
            f"{where}: images have different sizes after data.preprocess={preprocess} ({shown}, ...); "
            f"use data.preprocess=resize_and_crop to bring them to one size"
        )
    h, w = next(iter(shapes))[-2:]
    if preprocess in ("resize_and_crop", "crop", "scale_width_and_crop") and (h < crop_size or w < crop_size):
        raise GantrainError(f"{where}: images are {w}x{h}, smaller than data.crop_size={crop_size}; lower data.crop_size")


def save_png(image: torch.Tensor, path: Path) -> None:
    """Save one (C, H, W) image in [-1, 1], keeping its channel count (1 -> grey, 3 -> RGB)."""
    arr = image.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).cpu()
    arr = arr.permute(1, 2, 0).numpy()
    if arr.shape[2] == 1:
        Image.fromarray(arr[:, :, 0], mode="L").save(path)
    else:
        Image.fromarray(arr[:, :, :3]).save(path)
