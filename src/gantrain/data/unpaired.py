"""Unpaired two-domain data for image translation: batches `{"A": ..., "B": ...}` in [-1, 1].

An epoch is max(|A|, |B|) batches of items: A is taken in the shuffled order (index mod |A|), B is drawn
uniformly at random from the item's key (the reference's "unaligned" sampling), so no pairing exists. Random
crops and flips are drawn per image from the same key (`keys.py`), so resume is exact in every `data.cache` mode.

Sources: `digits2negative` / `digits2edges` (embedded, offline, 32 px grey: the two domains come from disjoint
halves of the digits train split), `unpaired_folder` (trainA/ trainB/ testA/ testB/), and the CycleGAN
datasets by name (`data=horse2zebra`, ...), downloaded into `data.root` on first use.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from gantrain.data.base import DataInfo, DataSource, InMemoryImages, InMemorySplit, random_crop, random_flip, take
from gantrain.data.digits import digits_split_indices, digits_uint8
from gantrain.data.download import download_and_extract
from gantrain.data.images import read_rgb_jpeg
from gantrain.data.keys import B_FLIP, B_LEFT, B_TOP, FLIP, LEFT, PARTNER, TOP, draw
from gantrain.data.stream import FileRows, check_headers, resolve_cache
from gantrain.errors import GantrainError

log = logging.getLogger(__name__)

PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
# The reference's extensions (either case) plus webp.
EXTENSIONS = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp"}
CYCLEGAN_DATASETS = (
    "ae_photos", "apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo",
    "ukiyoe2photo", "vangogh2photo", "maps", "facades", "iphone2dslr_flower", "mini",
)
CYCLEGAN_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip"
LAYOUT = ("trainA", "trainB", "testA", "testB")


class UnpairedImages(InMemorySplit):
    """Two uint8 image stores (N, C, H, W), tensors or `FileRows`; optional random crop to `crop` and flips.

    `serial=True` pairs A[i mod |A|] with B[i mod |B|] instead of a random B (the reference's serial_batches).
    `domain("A")` gives one side as plain `InMemoryImages` (with its labels, if any) for evaluation.
    """

    def __init__(self, a: Any, b: Any, labels_a: torch.Tensor | None = None,
                 labels_b: torch.Tensor | None = None, crop: int | None = None, flip: bool = False,
                 serial: bool = False) -> None:
        for name, x in (("A", a), ("B", b)):
            if x.dtype != torch.uint8 or len(x.shape) != 4 or x.shape[0] == 0:
                raise ValueError(f"UnpairedImages wants a non-empty uint8 (N, C, H, W) store for domain {name}")
        self.a, self.b, self.labels_a, self.labels_b = a, b, labels_a, labels_b
        self.crop, self.flip, self.serial = crop, flip, serial

    def __len__(self) -> int:
        return max(self.a.shape[0], self.b.shape[0])

    @property
    def device(self) -> torch.device:
        return self.a.device

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "UnpairedImages":
        mv = lambda t: t if t is None or not torch.is_tensor(t) else fn(t)  # noqa: E731
        return UnpairedImages(mv(self.a), mv(self.b), mv(self.labels_a), mv(self.labels_b), self.crop, self.flip, self.serial)

    def _augment(self, x: torch.Tensor, keys: torch.Tensor | None, side: str) -> torch.Tensor:
        if self.crop is not None and (x.shape[-1] != self.crop or x.shape[-2] != self.crop):
            if keys is None:  # evaluation: the centre crop
                top, left = (x.shape[-2] - self.crop) // 2, (x.shape[-1] - self.crop) // 2
                x = x[..., top : top + self.crop, left : left + self.crop]
            else:
                x = random_crop(x, self.crop, keys, *((TOP, LEFT) if side == "A" else (B_TOP, B_LEFT)))
        if self.flip and keys is not None:
            x = random_flip(x, keys, FLIP if side == "A" else B_FLIP)
        return x

    def gather(self, index: torch.Tensor, keys: torch.Tensor | None) -> dict[str, torch.Tensor]:
        ia = index % self.a.shape[0]
        if self.serial or keys is None:
            ib = index % self.b.shape[0]
        else:
            ib = draw(keys, PARTNER, self.b.shape[0])
        return {"A": self._augment(take(self.a, ia), keys, "A"), "B": self._augment(take(self.b, ib), keys, "B")}

    def domain(self, name: str) -> InMemoryImages:
        """One side, centre-cropped to the training size, for evaluation and translation."""
        images, labels = (self.a, self.labels_a) if name == "A" else (self.b, self.labels_b)
        return InMemoryImages(self._augment(images, None, name).contiguous(), labels, flip=False)


# ---------------------------------------------------------------------------------------------- digits
def negative(x: torch.Tensor) -> torch.Tensor:
    """Domain B of digits2negative: 1 - x for x in [0, 1]."""
    return 1.0 - x


def edges(x: torch.Tensor) -> torch.Tensor:
    """Domain B of digits2edges: a 3x3 dilation minus the digit (x in [0, 1]), i.e. its outer outline."""
    return F.max_pool2d(x, 3, stride=1, padding=1) - x


class _DigitsUnpaired(DataSource):
    """Digits (32 px, grey) with domain A = the digit and domain B = `transform(digit)`.

    Train: the digits train split is cut into two disjoint halves (fixed, stratified by class), A from one and
    B from the other, so no training pair exists. Test: every test digit in both domains (A and its exact
    B counterpart), which lets metrics check classes and measure the distance to the true translation.
    """

    transform: Callable[[torch.Tensor], torch.Tensor]
    inverse_b: Callable[[torch.Tensor], torch.Tensor] | None = None  # B -> A exactly, where one exists

    @dataclass
    class Config:
        name: str = "digits2negative"
        root: Optional[str] = None  # unused: the digits ship with scikit-learn
        image_size: int = 32
        channels: int = 1
        batch_size: int = 1
        num_workers: int = 0
        flip: bool = False  # mirrored digits are not digits

    def __init__(self, cfg, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        if cfg.channels != 1:
            raise GantrainError(f"data={cfg.name} is grey: set data.channels=1 (got {cfg.channels})")
        images, labels = digits_uint8(cfg.image_size)
        split = digits_split_indices()
        train = torch.tensor(split["train"])
        half_a, half_b = self._halves(labels[train])
        ia, ib = train[half_a], train[half_b]
        test = torch.tensor(split["test"])
        to_b = type(self).to_domain_b
        self._images, self._labels, self._index = images, labels, {"train": train, "test": test}
        self._splits = {
            "train": UnpairedImages(images[ia], to_b(images[ib]), labels[ia], labels[ib], flip=cfg.flip),
            "test": UnpairedImages(images[test], to_b(images[test]), labels[test], labels[test]),
        }

    @staticmethod
    def _halves(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions of two disjoint halves, each with every class in equal share (fixed seed)."""
        gen = torch.Generator().manual_seed(0)
        first, second = [], []
        for c in labels.unique().tolist():
            pos = (labels == c).nonzero().flatten()
            pos = pos[torch.randperm(len(pos), generator=gen)]
            first.append(pos[: len(pos) // 2])
            second.append(pos[len(pos) // 2 :])
        return torch.cat(first).sort().values, torch.cat(second).sort().values

    def labelled_domain(self, side: str, split: str) -> InMemoryImages:
        """Every digit of `split` rendered in domain `side`, with labels: what domain classifiers train on."""
        idx = self._index[split]
        images = self._images[idx] if side == "A" else self.to_domain_b(self._images[idx])
        return InMemoryImages(images, self._labels[idx])

    @classmethod
    def to_domain_b(cls, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0
        return (cls.transform(x) * 255.0).round().clamp(0, 255).to(torch.uint8)

    @property
    def info(self) -> DataInfo:
        train = self._splits["train"]
        return DataInfo(
            name=self.cfg.name, channels=1, image_size=self.cfg.image_size, num_classes=10,
            class_names=[str(i) for i in range(10)],
            class_counts=torch.bincount(train.labels_a, minlength=10).tolist(),
            extra={"domains": ["A", "B"], "channels_A": 1, "channels_B": 1, "paired_test": True,
                   "size_A": train.a.shape[0], "size_B": train.b.shape[0]},
        )

    def split(self, name: str) -> UnpairedImages:
        if name not in self._splits:
            raise GantrainError(f"data={self.cfg.name} has splits train and test, not {name!r}")
        return self._splits[name]


class Digits2Negative(_DigitsUnpaired):
    """`data=digits2negative`: digit <-> its photographic negative (white digit on black <-> black on white)."""

    transform = staticmethod(negative)
    inverse_b = staticmethod(negative)


class Digits2Edges(_DigitsUnpaired):
    """`data=digits2edges`: digit <-> its outline (dilation minus digit)."""

    transform = staticmethod(edges)


# ---------------------------------------------------------------------------------------------- folders
def list_domain(folder: Path) -> list[Path]:
    """Image files under `folder`, recursively, sorted; extensions in either case."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())


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


def decode_array(path: Path, channels: int, preprocess: str, load_size: int, crop_size: int) -> np.ndarray:
    """One file decoded and preprocessed to an (H, W, C) uint8 array (raises if unreadable)."""
    arr = np.array(preprocess_image(open_image(path, channels), preprocess, load_size, crop_size), dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def decode_file(path: Path, channels: int, preprocess: str, load_size: int, crop_size: int) -> torch.Tensor:
    """`decode_array` as a (C, H, W) tensor: what a streamed split reads per item."""
    return torch.from_numpy(decode_array(path, channels, preprocess, load_size, crop_size)).permute(2, 0, 1).contiguous()


def decode_domain(paths: list[Path], channels: int, preprocess: str, load_size: int, crop_size: int,
                  where: str, workers: int = 8) -> torch.Tensor:
    """Decode and preprocess every file in threads into one uint8 tensor; unreadable files are skipped."""

    def one(path: Path) -> np.ndarray | None:
        try:
            return decode_array(path, channels, preprocess, load_size, crop_size)
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            log.warning("skipping unreadable image %s (%s)", path, exc)
            return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        arrays = [a for a in pool.map(one, paths) if a is not None]
    if not arrays:
        raise GantrainError(f"{where}: none of its {len(paths)} image(s) could be read; check the files")
    if len(arrays) < len(paths):
        log.warning("%s: skipped %d unreadable image(s) of %d", where, len(paths) - len(arrays), len(paths))
    sizes = {a.shape[:2] for a in arrays}
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for h, w in sorted(sizes)[:3])
        raise GantrainError(
            f"{where}: images have different sizes after data.preprocess={preprocess} ({shown}, ...); "
            f"use data.preprocess=resize_and_crop to bring them to one size"
        )
    h, w = next(iter(sizes))
    if preprocess in ("resize_and_crop", "crop", "scale_width_and_crop") and (h < crop_size or w < crop_size):
        raise GantrainError(f"{where}: images are {w}x{h}, smaller than data.crop_size={crop_size}; lower data.crop_size")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


class UnpairedFolder(DataSource):
    """`data=unpaired_folder data.root=DIR`: DIR/trainA, trainB, testA, testB; also the CycleGAN datasets by name.

    With `dataset` set (e.g. horse2zebra) and `download=true`, a missing `root/<dataset>` is fetched from the
    CycleGAN server. Images are decoded once (after the deterministic resize of `preprocess`) and held in
    memory as uint8; training crops `crop_size` at random and flips when `flip=true`. At test time the
    reference loads at crop_size (load = crop), so test images are resized to crop_size, never randomly cropped.
    """

    @dataclass
    class Config:
        name: str = "unpaired_folder"
        root: Optional[str] = None
        dataset: Optional[str] = None  # a CycleGAN dataset name: its folder is root/<dataset>
        download: bool = False
        load_size: int = 286
        crop_size: int = 256
        preprocess: str = "resize_and_crop"  # resize_and_crop | crop | scale_width | scale_width_and_crop | none
        flip: bool = True
        channels: int = 3
        batch_size: int = 1
        num_workers: int = 2  # stream mode: decoding worker processes
        max_dataset_size: Optional[int] = None  # cap on each side (null: all)
        serial_batches: bool = False  # true: B[i mod |B|] instead of a random B
        # how the train split is held (data/stream.py)
        cache: str = "auto"  # auto | device | host | stream
        cache_budget_gb: Optional[float] = None  # auto's budget (null: a fraction of free device/host memory)

    def __init__(self, cfg, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        if cfg.preprocess not in PREPROCESS:
            raise GantrainError(f"data.preprocess={cfg.preprocess} is not valid; choose one of: {', '.join(PREPROCESS)}")
        if cfg.channels not in (1, 3):
            raise GantrainError(f"data.channels must be 1 or 3, got {cfg.channels}")
        if cfg.crop_size > cfg.load_size and cfg.preprocess in ("resize_and_crop", "scale_width_and_crop"):
            raise GantrainError(f"data.crop_size={cfg.crop_size} exceeds data.load_size={cfg.load_size}; lower crop_size or raise load_size")
        self.folder = self._locate(cfg)
        self._splits: dict[str, UnpairedImages] = {}
        self._mode: str | None = None
        self._listing: dict[tuple[str, str], tuple[list[Path], Path]] = {}

    @staticmethod
    def _locate(cfg) -> Path:
        if not cfg.root:
            raise GantrainError("data.root is not set; pass data.root=/path/to/folder holding trainA/ trainB/ testA/ testB/")
        root = Path(cfg.root).expanduser()
        if cfg.dataset is None:
            folder = root
        else:
            if cfg.dataset not in CYCLEGAN_DATASETS:
                raise GantrainError(f"unknown CycleGAN dataset {cfg.dataset!r}; choose one of: {', '.join(CYCLEGAN_DATASETS)}")
            folder = root / cfg.dataset
            if not folder.is_dir():
                url = CYCLEGAN_URL.format(name=cfg.dataset)
                if not cfg.download:
                    raise GantrainError(
                        f"{folder} does not exist; run with data.download=true to fetch {url}, or unpack it there by hand "
                        f"(with {', '.join(LAYOUT)} inside)"
                    )
                download_and_extract(url, root, folder_name=cfg.dataset, expect=("trainA", "trainB"))
        if not folder.is_dir():
            raise GantrainError(f"data.root={folder} is not a folder; it must hold {', '.join(LAYOUT)}")
        for sub in ("trainA", "trainB"):
            if not (folder / sub).is_dir():
                raise GantrainError(f"{folder} has no {sub}/ folder; an unpaired dataset needs {', '.join(LAYOUT)}")
        return folder

    def _paths(self, phase: str, side: str) -> tuple[list[Path], Path]:
        if (phase, side) not in self._listing:
            self._listing[phase, side] = self._list(phase, side)
        return self._listing[phase, side]

    def _list(self, phase: str, side: str) -> tuple[list[Path], Path]:
        sub = self.folder / f"{phase}{side}"
        if phase == "test" and not sub.is_dir():
            sub = self.folder / f"train{side}"
            log.warning("%s has no test%s/; evaluating on train%s", self.folder, side, side)
        paths = list_domain(sub)
        if not paths:
            raise GantrainError(f"{sub} holds no images ({', '.join(sorted(EXTENSIONS))}); add images or fix data.root")
        if self.cfg.max_dataset_size is not None:
            paths = paths[: self.cfg.max_dataset_size]
        return paths, sub

    def _domain(self, phase: str, side: str) -> Any:
        cfg = self.cfg
        paths, sub = self._paths(phase, side)
        if phase == "train" and self.cache_mode == "stream":
            paths = check_headers(paths, str(sub))
            decode = partial(decode_file, channels=cfg.channels, preprocess=cfg.preprocess, load_size=cfg.load_size,
                             crop_size=cfg.crop_size)
            return FileRows(paths, decode, (len(paths), *self._decoded_shape(paths, decode)))
        if phase == "train":
            return decode_domain(paths, cfg.channels, cfg.preprocess, cfg.load_size, cfg.crop_size, str(sub))
        # test: load = crop, no flip (the reference's test options); always held in memory (test sets are small)
        test_pre = "resize_and_crop" if cfg.preprocess == "resize_and_crop" else cfg.preprocess
        return decode_domain(paths, cfg.channels, test_pre, cfg.crop_size, cfg.crop_size, str(sub))

    def _decoded_shape(self, paths: list[Path], decode: Callable[[Path], torch.Tensor] | None = None) -> tuple[int, int, int]:
        """(C, H, W) of a decoded train image: known for resize_and_crop, else read from the first file."""
        cfg = self.cfg
        if cfg.preprocess == "resize_and_crop" or decode is None:
            return cfg.channels, cfg.load_size, cfg.load_size  # the other modes: an estimate until decoded
        for p in paths:
            try:
                return tuple(decode(p).shape)  # type: ignore[return-value]
            except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
                continue
        raise GantrainError(f"none of the images under {paths[0].parent} could be read; check the files")

    @property
    def cache_mode(self) -> str:
        """`data.cache`, with `auto` resolved from the file count x decoded size (before decoding anything)."""
        if self._mode is None:
            n = sum(len(self._paths("train", side)[0]) for side in ("A", "B"))
            c, h, w = self._decoded_shape([])
            self._mode = resolve_cache(self.cfg.cache, n * c * h * w, self.device, self.cfg.cache_budget_gb, str(self.folder))
        return self._mode

    def split(self, name: str) -> UnpairedImages:
        if name not in ("train", "test"):
            raise GantrainError(f"an unpaired folder has splits train and test, not {name!r}")
        if name not in self._splits:
            a, b = self._domain(name, "A"), self._domain(name, "B")
            crops = self.cfg.preprocess in ("resize_and_crop", "crop", "scale_width_and_crop")
            self._splits[name] = UnpairedImages(
                a, b, crop=self.cfg.crop_size if crops else None,
                flip=self.cfg.flip and name == "train", serial=self.cfg.serial_batches,
            )
        return self._splits[name]

    @property
    def info(self) -> DataInfo:
        train = self.split("train")
        crops = self.cfg.preprocess in ("resize_and_crop", "crop", "scale_width_and_crop")
        size = self.cfg.crop_size if crops else int(train.a.shape[-1])
        return DataInfo(
            name=self.cfg.name, channels=self.cfg.channels, image_size=size,
            extra={"domains": ["A", "B"], "channels_A": self.cfg.channels, "channels_B": self.cfg.channels,
                   "paired_test": False, "size_A": int(train.a.shape[0]), "size_B": int(train.b.shape[0]),
                   "folder": str(self.folder)},
        )
