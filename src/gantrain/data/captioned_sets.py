"""Captioned photo datasets: `data=cub`, `data=flowers102` (Reed et al.'s text releases) and `data=captioned_folder`.

Layouts (under `data.root`), as the releases unpack:
- cub: `CUB_200_2011/images/<class>/<name>.jpg` (CUB-200-2011) and `text_c10/<class>/<name>.txt` (the
  10-captions-per-image release, `cvpr2016_cub`), optional `trainvalclasses.txt`/`testclasses.txt`.
- flowers102: `jpg/image_NNNNN.jpg` (Oxford-102) and `text_c10/class_NNNNN/image_NNNNN.txt` (`cvpr2016_flowers`),
  optional `trainvalclasses.txt`/`testclasses.txt`.
- captioned_folder: any `x.png` (any image extension) with a sidecar `x.txt`, one caption per line; class
  subfolders, when there are several, decide which captions mismatch (otherwise every image is its own content).

Without the class lists the split is by class (the paper's protocol): the last `test_classes` classes are test.
Images are decoded once (centre-cropped, resized) and cached under `~/.cache/gantrain/data/` (`data.cache_dir`),
or read per item from the files with `data.cache=stream`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import MISSING

from gantrain.data.base import DataInfo, DataSource, SourceConfig
from gantrain.data.captions import CaptionedImages, build_vocab, encode_captions
from gantrain.data.download import fetch_archive
from gantrain.data.images import decode_all, load_tensor
from gantrain.data.listing import FolderListing
from gantrain.data.stream import FileRows, check_headers, resolve_cache
from gantrain.errors import GantrainError
from gantrain.io import cache_folder, cache_path, load_or_build

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def read_captions(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]


def _class_lists(root: Path) -> tuple[list[str], list[str]] | None:
    for folder in (root, *[p for p in root.iterdir() if p.is_dir()]):
        a, b = folder / "trainvalclasses.txt", folder / "testclasses.txt"
        if a.is_file() and b.is_file():
            return read_captions(a), read_captions(b)
    return None


@dataclass
class Item:
    image: Path
    captions: list[str]
    label: str


@dataclass
class CaptionedConfig(SourceConfig):
    """The keys of configs/data/captioned_folder.yaml, cub.yaml and flowers102.yaml (their values live there)."""

    download: bool = MISSING
    urls: list[str] = MISSING  # archives fetched into root when download=true
    cache_dir: Optional[str] = MISSING  # decoded-array cache folder (null: ~/.cache/gantrain/data)
    image_size: int = MISSING
    cache: str = MISSING  # auto | device | host | stream (data/stream.py)
    cache_budget_gb: Optional[float] = MISSING  # auto's budget (null: a fraction of free device/host memory)
    captions_per_image: int = MISSING
    max_len: int = MISSING
    min_word_count: int = MISSING
    test_classes: int = MISSING


class CaptionedSource(DataSource):
    """Shared by the captioned photo datasets: subclasses list (image, captions, class) items."""

    Config = CaptionedConfig
    DATASET = "captioned"
    MISSING = ""

    def items(self, root: Path) -> list[Item]:
        raise NotImplementedError

    def __init__(self, cfg, seed: int = 0, listing: FolderListing | None = None) -> None:
        super().__init__(cfg, seed, listing)
        if not cfg.root:
            raise GantrainError(f"data={self.DATASET} needs data.root: {self.MISSING}")
        root = Path(cfg.root).expanduser()
        if cfg.download and cfg.urls:
            for url in cfg.urls:
                fetch_archive(url, root)
        if not root.is_dir():
            raise GantrainError(f"data.root={root} does not exist; {self.MISSING}")
        items = self.items(root)
        if len(items) < 4:
            raise GantrainError(f"found {len(items)} captioned images under {root}; {self.MISSING}")
        self._root, self._items = root, items
        self._loaded: dict[str, Any] | None = None
        self._mode: str | None = None

    @property
    def cache_mode(self) -> str:
        """`data.cache`, with `auto` resolved from the image count x decoded size (before decoding anything)."""
        if self._mode is None:
            need = len(self._items) * 3 * self.cfg.image_size**2
            self._mode = resolve_cache(self.cfg.cache, need, self.device, self.cfg.cache_budget_gb, str(self._root))
        return self._mode

    @property
    def _data(self) -> dict[str, Any]:
        """Tokens, labels and split (always in memory: small), and the decoded images unless streaming."""
        if self._loaded is None:
            self._loaded = self._load(self._root, self._items)
        return self._loaded

    def _split(self, root: Path, items: list[Item]) -> list[bool]:
        """True for test items: the class lists of the release, else the last test_classes classes."""
        classes = sorted({it.label for it in items})
        lists = _class_lists(root)
        if lists is not None:
            test = set(lists[1])
        else:
            k = min(self.cfg.test_classes, len(classes) - 1) if len(classes) > 1 else 0
            test = set(classes[len(classes) - k :]) if k else set()
        if not test:  # one class (or none held out): every tenth image is test
            return [i % 10 == 9 for i in range(len(items))]
        return [it.label in test for it in items]

    def _load(self, root: Path, items: list[Item]) -> dict[str, Any]:
        stream = self.cache_mode == "stream"
        key = {"stream": stream, "dataset": self.DATASET, "root": str(root.resolve()), "n": len(items), "size": self.cfg.image_size,
               "k": self.cfg.captions_per_image, "max_len": self.cfg.max_len, "version": CACHE_VERSION,
               "first": str(items[0].image), "last": str(items[-1].image)}
        path = cache_path(cache_folder(self.cfg.cache_dir, "data"), self.DATASET, key)
        return load_or_build(path, lambda: self._decode(root, items, stream, path))

    def _decode(self, root: Path, items: list[Item], stream: bool, path: Path) -> dict[str, Any]:
        """Tokens, labels, split and (unless streaming) the decoded images, as the cache file holds them."""
        if stream:  # the listing-time header check; files are decoded per item while training
            ok = set(check_headers([it.image for it in items], str(root)))
            items, images = [it for it in items if it.image in ok], None
        else:
            log.info("decoding %d %s images (cached at %s)", len(items), self.DATASET, path)
            images, bad = decode_all([it.image for it in items], 3, self.cfg.image_size, str(root))
            dropped = set(bad)
            items = [it for i, it in enumerate(items) if i not in dropped]
        k = self.cfg.captions_per_image
        captions = [(it.captions * k)[:k] for it in items]  # fewer captions than k: repeat them
        is_test = self._split(root, items)
        vocab = build_vocab([c for caps, t in zip(captions, is_test) if not t for c in caps], self.cfg.min_word_count)
        tokens, _ = encode_captions([c for caps in captions for c in caps], vocab, self.cfg.max_len)
        classes = sorted({it.label for it in items})
        labels = torch.tensor([classes.index(it.label) for it in items])
        data = {"tokens": tokens.view(len(items), k, -1), "labels": labels, "vocab": vocab,
                "classes": classes, "test": torch.tensor(is_test)}
        if stream:
            data["paths"] = [str(it.image) for it in items]
        else:
            data["images"] = images
        return data

    @property
    def info(self) -> DataInfo:
        train = ~self._data["test"]
        classes = list(self._data["classes"])
        return DataInfo(
            name=self.DATASET, channels=3, image_size=self.cfg.image_size, num_classes=len(classes), class_names=classes,
            class_counts=torch.bincount(self._data["labels"][train], minlength=len(classes)).tolist(),
            vocab=list(self._data["vocab"]), max_len=self.cfg.max_len,
        )

    def split(self, name: str) -> CaptionedImages:
        if name not in ("train", "test"):
            raise GantrainError(f"data={self.DATASET} has splits train and test, not {name!r}")
        rows = self._data["test"] if name == "test" else ~self._data["test"]
        labels = self._data["labels"][rows]
        per_image = len(set(labels.tolist())) < 2  # one class in this split: each image is its own content
        content = torch.arange(int(rows.sum())) if per_image else labels
        if "images" in self._data:
            images = self._data["images"][rows]
        else:  # stream mode: both splits read their files per item (the test split through evaluation's gathers)
            size = self.cfg.image_size
            paths = [Path(p) for p, r in zip(self._data["paths"], rows.tolist()) if r]
            images = FileRows(paths, partial(load_tensor, channels=3, size=size), (len(paths), 3, size, size))
        return CaptionedImages(images, self._data["tokens"][rows], content, None, self.cfg.flip)


def _text_folder(root: Path) -> Path:
    for name in ("text_c10", "text"):
        for base in (root, *[p for p in root.iterdir() if p.is_dir()]):
            if (base / name).is_dir():
                return base / name
    raise FileNotFoundError


class CUB(CaptionedSource):
    """`data=cub`: CUB-200-2011 birds with Reed et al.'s 10 captions per image; 150 train / 50 test classes."""

    DATASET = "cub"
    MISSING = ("place CUB_200_2011.tgz unpacked (https://www.vision.caltech.edu/datasets/cub_200_2011/) as "
               "<root>/CUB_200_2011/images/ and Reed's captions (cvpr2016_cub, github.com/reedscot/cvpr2016) as <root>/text_c10/")

    def items(self, root: Path) -> list[Item]:
        try:
            text = _text_folder(root)
        except FileNotFoundError:
            raise GantrainError(f"no text_c10/ captions under {root}; {self.MISSING}") from None
        images = root / "CUB_200_2011" / "images"
        if not images.is_dir():
            raise GantrainError(f"no CUB_200_2011/images/ under {root}; {self.MISSING}")
        out = []
        for txt in sorted(text.glob("*/*.txt")):
            img = images / txt.parent.name / (txt.stem + ".jpg")
            if img.is_file():
                out.append(Item(img, read_captions(txt), txt.parent.name))
        return out


class Flowers102(CaptionedSource):
    """`data=flowers102`: Oxford-102 flowers with Reed et al.'s 10 captions per image; 82 train / 20 test classes."""

    DATASET = "flowers102"
    MISSING = ("place 102flowers.tgz unpacked (https://www.robots.ox.ac.uk/~vgg/data/flowers/102/) as <root>/jpg/ and "
               "Reed's captions (cvpr2016_flowers, github.com/reedscot/cvpr2016) as <root>/text_c10/class_NNNNN/")

    def items(self, root: Path) -> list[Item]:
        try:
            text = _text_folder(root)
        except FileNotFoundError:
            raise GantrainError(f"no text_c10/ captions under {root}; {self.MISSING}") from None
        jpg = root / "jpg"
        if not jpg.is_dir():
            raise GantrainError(f"no jpg/ folder under {root}; {self.MISSING}")
        out = []
        for txt in sorted(text.glob("*/*.txt")):
            img = jpg / (txt.stem + ".jpg")
            if img.is_file():
                out.append(Item(img, read_captions(txt), txt.parent.name))
        return out


class CaptionedFolder(CaptionedSource):
    """`data=captioned_folder data.root=...`: images with sidecar .txt captions (one per line)."""

    DATASET = "captioned_folder"
    MISSING = "put images with sidecar captions there (x.png next to x.txt, one caption per line)"

    def items(self, root: Path) -> list[Item]:
        out = []
        for img in self.folders.images(root):
            txt = img.with_suffix(".txt")
            if txt.is_file() and read_captions(txt):
                out.append(Item(img, read_captions(txt), str(img.parent.relative_to(root))))
        return out
