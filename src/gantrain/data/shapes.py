"""`data=shapes`: one coloured shape per image on a black background, with template captions (offline).

Deterministic from `data.generator_seed`: colour (7), shape (3), size (2) and position (9: centre, four sides,
four corners) are drawn per image; each image gets `captions_per_image` captions written from several templates
and synonyms. The arrays are generated once (a few seconds, vectorised) and cached under
`~/.cache/gantrain/data/` keyed by the settings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from omegaconf import MISSING
import torch.nn.functional as F

from gantrain.data.base import DataInfo, DataSource, SourceConfig
from gantrain.data.captions import CaptionedImages, build_vocab, encode_captions
from gantrain.data.listing import FolderListing
from gantrain.errors import GantrainError
from gantrain.io import cache_folder, cache_path, load_or_build

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
COLOURS = {
    "red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 245), "yellow": (240, 230, 40),
    "magenta": (230, 40, 230), "cyan": (40, 225, 235), "white": (245, 245, 245),
}
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")
POSITIONS = ("center", "top", "bottom", "left", "right", "top left", "top right", "bottom left", "bottom right")
ATTRIBUTES = {"colour": list(COLOURS), "shape": list(SHAPES), "size": list(SIZES), "position": list(POSITIONS)}
_POS_XY = {
    "center": (0.5, 0.5), "top": (0.5, 0.25), "bottom": (0.5, 0.75), "left": (0.25, 0.5), "right": (0.75, 0.5),
    "top left": (0.25, 0.25), "top right": (0.75, 0.25), "bottom left": (0.25, 0.75), "bottom right": (0.75, 0.75),
}
_RADIUS = {"small": 0.11, "large": 0.2}  # fraction of the image side
SYNONYMS = {
    "shape": {"circle": ["circle", "disc", "disk"], "square": ["square", "box", "block"], "triangle": ["triangle"]},
    "size": {"small": ["small", "little", "tiny"], "large": ["large", "big"]},
    "position": {
        "center": ["center", "middle", "centre"], "top": ["top", "upper side"], "bottom": ["bottom", "lower side"],
        "left": ["left", "left side"], "right": ["right", "right side"], "top left": ["top left", "upper left"],
        "top right": ["top right", "upper right"], "bottom left": ["bottom left", "lower left"],
        "bottom right": ["bottom right", "lower right"],
    },
}
TEMPLATES = (
    "a {size} {colour} {shape} at the {position}",
    "there is a {size} {colour} {shape} in the {position}",
    "a {colour} {shape} , {size} , at the {position}",
    "the picture shows a {size} {shape} in {colour} near the {position}",
    "{size} {colour} {shape} placed at the {position} of the image",
    "at the {position} there is a {colour} {shape} that is {size}",
)


def attributes_caption(colour: str, shape: str, size: str, position: str) -> str:
    """The canonical caption (first template, first synonyms), e.g. for sampling prompts."""
    return TEMPLATES[0].format(colour=colour, shape=shape, size=size, position=position)


def render(attrs: np.ndarray, size: int, rng: np.random.Generator, supersample: int = 2) -> torch.Tensor:
    """(N, 3, size, size) uint8 images for attribute rows (colour, shape, size, position), antialiased."""
    n, s = len(attrs), size * supersample
    grid = (torch.arange(s, dtype=torch.float32) + 0.5) / s
    yy, xx = grid.view(1, s, 1), grid.view(1, 1, s)
    centres = torch.tensor([_POS_XY[POSITIONS[p]] for p in attrs[:, 3]], dtype=torch.float32)
    centres += torch.from_numpy(rng.uniform(-0.04, 0.04, (n, 2))).float()
    radius = torch.tensor([_RADIUS[SIZES[z]] for z in attrs[:, 2]], dtype=torch.float32)
    radius *= torch.from_numpy(rng.uniform(0.9, 1.1, n)).float()
    cx, cy, r = centres[:, 0].view(-1, 1, 1), centres[:, 1].view(-1, 1, 1), radius.view(-1, 1, 1)
    dx, dy = xx - cx, yy - cy
    circle = dx.pow(2) + dy.pow(2) <= r.pow(2)
    square = torch.maximum(dx.abs(), dy.abs()) <= 0.85 * r
    top, base = -r, 0.75 * r  # triangle pointing up, apex at cy - r
    triangle = (dy >= top) & (dy <= base) & (dx.abs() <= (dy - top) / (base - top) * r)
    kind = torch.from_numpy(attrs[:, 1]).view(-1, 1, 1)
    mask = torch.where(kind == 0, circle, torch.where(kind == 1, square, triangle)).float()
    rgb = torch.tensor([list(COLOURS.values())[c] for c in attrs[:, 0]], dtype=torch.float32).view(n, 3, 1, 1)
    img = mask.unsqueeze(1) * rgb
    img = F.avg_pool2d(img, supersample) if supersample > 1 else img
    return img.round().clamp(0, 255).to(torch.uint8)


def write_captions(attrs: np.ndarray, per_image: int, rng: np.random.Generator) -> list[str]:
    """`per_image` captions per attribute row, each from a random template with random synonyms."""
    out = []
    names = list(COLOURS)
    for c, sh, sz, p in attrs.tolist():
        words = {"colour": [names[c]], "shape": SYNONYMS["shape"][SHAPES[sh]],
                 "size": SYNONYMS["size"][SIZES[sz]], "position": SYNONYMS["position"][POSITIONS[p]]}
        for _ in range(per_image):
            template = TEMPLATES[rng.integers(len(TEMPLATES))]
            out.append(template.format(**{k: v[rng.integers(len(v))] for k, v in words.items()}))
    return out


def all_words() -> list[str]:
    """Every caption the generator can write uses only these words (so the vocabulary is fixed)."""
    pieces = [t.format(colour="", shape="", size="", position="") for t in TEMPLATES] + list(COLOURS)
    pieces += [w for group in SYNONYMS.values() for options in group.values() for w in options]
    return pieces


def generate(cfg: Any) -> dict[str, Any]:
    """The whole dataset (train then test rows) for these settings."""
    n = cfg.num_train + cfg.num_test
    rng = np.random.default_rng(cfg.generator_seed)
    attrs = np.stack([rng.integers(len(v), size=n) for v in ATTRIBUTES.values()], axis=1).astype(np.int64)
    images = torch.cat([render(chunk, cfg.image_size, rng) for chunk in np.array_split(attrs, max(n // 2000, 1))])
    captions = write_captions(attrs, cfg.captions_per_image, rng)
    vocab = build_vocab(all_words())
    tokens, unknown = encode_captions(captions, vocab, cfg.max_len)
    assert not unknown, unknown
    return {"images": images, "tokens": tokens.view(n, cfg.captions_per_image, cfg.max_len),
            "attrs": torch.from_numpy(attrs), "vocab": vocab}


def load_or_generate(cfg: Any) -> dict[str, Any]:
    """The dataset for these settings, from `data.root` (or ~/.cache/gantrain/data), generated on first use."""
    key = {k: getattr(cfg, k) for k in ("image_size", "num_train", "num_test", "captions_per_image", "max_len", "generator_seed")}
    key["version"] = GENERATOR_VERSION
    return load_or_build(cache_path(cache_folder(cfg.root, "data"), "shapes", key), lambda: generate(cfg))


class Shapes(DataSource):
    """`data=shapes`: `num_train` + `num_test` images, `captions_per_image` captions each."""

    @dataclass
    class Config(SourceConfig):
        """The keys of configs/data/shapes.yaml (their values live there)."""

        image_size: int = MISSING
        num_train: int = MISSING
        num_test: int = MISSING
        captions_per_image: int = MISSING
        max_len: int = MISSING
        generator_seed: int = MISSING  # the dataset, not the run: the same for every run seed

    def __init__(self, cfg, seed: int = 0, listing: FolderListing | None = None) -> None:
        super().__init__(cfg, seed, listing)
        if cfg.image_size < 16:
            raise GantrainError(f"data.image_size={cfg.image_size} is too small for shapes; use 32 or 64")
        if cfg.num_train < 2 or cfg.num_test < 2 or cfg.captions_per_image < 1:
            raise GantrainError("data.num_train and data.num_test must be at least 2, data.captions_per_image at least 1")
        self._data = load_or_generate(cfg)

    @property
    def info(self) -> DataInfo:
        return DataInfo(
            name="shapes", channels=3, image_size=self.cfg.image_size,
            vocab=list(self._data["vocab"]), max_len=self.cfg.max_len, attributes=ATTRIBUTES,
        )

    def split(self, name: str) -> CaptionedImages:
        if name not in ("train", "test"):
            raise GantrainError(f"data=shapes has splits train and test, not {name!r}")
        n = self.cfg.num_train
        rows = slice(0, n) if name == "train" else slice(n, None)
        attrs = self._data["attrs"][rows]
        content = attrs @ torch.tensor([54, 18, 9, 1])  # one id per attribute combination
        return CaptionedImages(self._data["images"][rows], self._data["tokens"][rows], content, attrs, self.cfg.flip)
