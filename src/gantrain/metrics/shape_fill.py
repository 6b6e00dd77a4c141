"""A pixel-level reading of the shape in a `data=shapes` image, beside the attribute classifier's (text2image).

The classifier can name a blob's shape from cues a person would not call a triangle; the fill ratio, the share of
the object's bounding box that the object covers, is a plain geometric check: a square fills it (~1), a disc
pi/4 (~0.79), the upward triangle half (~0.5). The object is every pixel whose brightest channel is above 0.7 of
full scale (the background is black); references are measured on the real images, not assumed.

Why 0.7: the shapes are rendered at 2x and averaged, so a pixel on an edge holds half of its colour, and the
brightest channel of every colour is 0.90-0.96, so those edge pixels sit at 0.45-0.48. A threshold of one half sat
just above them: noise of 2 % of full scale on the real test images took the reading from 0.974 to 0.877 (5 %:
0.749), so it measured noise more than shape. 0.7 lies between the half-covered (~0.47) and the fully covered
(~0.93) levels; the same noise leaves it at 0.973 / 0.966 (BENCHMARKS.md, GAN-CLS).
"""

from __future__ import annotations

import torch

THRESHOLD = 0.7  # of full scale, on the brightest channel: between the half-covered edge and the full level


def _extent(mask: torch.Tensor) -> torch.Tensor:
    """(N,) length of the span from the first to the last True along dim 1 of (N, S); 0 where none is True."""
    idx = torch.arange(mask.shape[1])
    first = torch.where(mask, idx, mask.shape[1]).amin(1)
    last = torch.where(mask, idx, -1).amax(1)
    return (last - first + 1).clamp_min(0)


def fill_ratio(images: torch.Tensor) -> torch.Tensor:
    """(N,) object pixels / bounding-box pixels for images (N, C, H, W) in [-1, 1]; 0 for an empty image."""
    bright = images.float().add(1).div(2).amax(1) > THRESHOLD  # (N, H, W)
    area = _extent(bright.any(2)) * _extent(bright.any(1))
    return bright.flatten(1).sum(1) / area.clamp_min(1)


def fill_scores(fake: torch.Tensor, fake_shape: torch.Tensor, real: torch.Tensor, real_shape: torch.Tensor,
                names: list[str]) -> dict[str, float]:
    """`fill_<shape>` (generated images, by the caption's shape) beside `fill_real_<shape>` (real images, by their
    shape), and `fill_shape_acc`: the share of generated images whose fill ratio is nearest the real mean of the
    caption's shape (`fill_real_shape_acc`: the same reading of the real images, its ceiling)."""
    f_fake, f_real = fill_ratio(fake), fill_ratio(real)
    means = torch.stack([f_real[real_shape == s].mean() if (real_shape == s).any() else torch.tensor(float("nan"))
                         for s in range(len(names))])

    def nearest(f: torch.Tensor) -> torch.Tensor:
        return (f[:, None] - means[None, :]).abs().nan_to_num(float("inf")).argmin(1)

    out: dict[str, float] = {}
    for s, name in enumerate(names):
        mine = fake_shape == s
        if mine.any():  # (a shape no caption asked for has no reading)
            out[f"fill_{name}"] = float(f_fake[mine].mean())
        out[f"fill_real_{name}"] = float(means[s])
    out["fill_shape_acc"] = float((nearest(f_fake) == fake_shape).float().mean())
    out["fill_real_shape_acc"] = float((nearest(f_real) == real_shape).float().mean())
    return out
