"""Captions drawn beside sample rows, so a grid of text-to-image samples says what each row was asked for."""

from __future__ import annotations

import textwrap

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont


def caption_panel(captions: list[str], row_height: int, width: int = 200, pad: int = 2) -> torch.Tensor:
    """(3, rows * (row_height + pad) + pad, width) image in [-1, 1]: white text on black, one caption per row."""
    height = len(captions) * (row_height + pad) + pad
    im = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default()
    chars = max(width // 6, 8)
    for r, caption in enumerate(captions):
        lines = textwrap.wrap(caption, chars)[: max(row_height // 11, 1)]
        draw.multiline_text((2, pad + r * (row_height + pad)), "\n".join(lines), fill=(255, 255, 255), font=font, spacing=0)
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float().div(127.5).sub(1.0)


def captioned_grid(images: torch.Tensor, captions: list[str], cols: int, pad: int = 2) -> torch.Tensor:
    """(1, C, H, W) in [-1, 1]: a caption panel beside rows of `cols` images each."""
    from torchvision.utils import make_grid

    s = images.shape[-1]
    grid = make_grid(images, nrow=cols, padding=pad, pad_value=-1.0)
    panel = caption_panel(captions, s, width=max(6 * 40, s), pad=pad)
    if images.shape[1] == 1:
        panel = panel[:1]
    return torch.cat([panel[:, : grid.shape[1]], grid[: images.shape[1]]], dim=2).unsqueeze(0)
