"""Decoding and resizing helpers shared by the image datasets."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


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


def decode_all(paths: list[Path], channels: int, size: int, workers: int = 8) -> tuple[torch.Tensor, list[int]]:
    """Decode files in threads; unreadable or truncated files are skipped and their positions returned."""

    def one(path: Path) -> np.ndarray | None:
        try:
            return load_image(path, channels, size)
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            log.warning("skipping unreadable image %s (%s)", path, exc)
            return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        arrays = list(pool.map(one, paths))
    kept = [a for a in arrays if a is not None]
    bad = [i for i, a in enumerate(arrays) if a is None]
    if not kept:
        return torch.empty(0, channels, size, size, dtype=torch.uint8), bad
    stacked = torch.from_numpy(np.stack(kept)).permute(0, 3, 1, 2).contiguous()
    return stacked, bad


def save_png(image: torch.Tensor, path: Path) -> None:
    """Save one (C, H, W) image in [-1, 1], keeping its channel count (1 -> grey, 3 -> RGB)."""
    arr = image.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).cpu()
    arr = arr.permute(1, 2, 0).numpy()
    if arr.shape[2] == 1:
        Image.fromarray(arr[:, :, 0], mode="L").save(path)
    else:
        Image.fromarray(arr[:, :, :3]).save(path)
