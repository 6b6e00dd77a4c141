"""Unpaired two-domain data for image translation: batches `{"A": ..., "B": ...}` in [-1, 1].

An epoch is max(|A|, |B|) batches of items: A is taken in the shuffled order (index mod |A|), B is drawn
uniformly at random from the item's key (the reference's "unaligned" sampling), so no pairing exists. Random
crops and flips are drawn per image from the same key (`keys.py`), so resume is exact in every `data.cache` mode.

Sources: `unpaired_folder` (trainA/ trainB/ testA/ testB/) and the CycleGAN datasets by name (`data=horse2zebra`,
...), downloaded into `data.root` on first use; the embedded digit domains are in `digit_domains.py`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from omegaconf import MISSING

from gantrain.data.augment import crop_and_flip
from gantrain.data.base import DataInfo, DataSource, InMemoryImages, InMemorySplit, SourceConfig, take
from gantrain.data.download import download_and_extract
from gantrain.data.images import IMAGE_SUFFIXES, PREPROCESS, UNREADABLE, check_decoded, decode_file, decode_many
from gantrain.data.keys import B_FLIP, B_LEFT, B_TOP, FLIP, LEFT, PARTNER, TOP, draw
from gantrain.data.listing import FolderListing
from gantrain.data.stream import FileRows, check_headers, resolve_cache
from gantrain.errors import GantrainError

log = logging.getLogger(__name__)

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
        """Each side draws its own crop and flip (A and B are independent images)."""
        return crop_and_flip(x, self.crop, self.flip, keys, (TOP, LEFT, FLIP) if side == "A" else (B_TOP, B_LEFT, B_FLIP))

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


# ---------------------------------------------------------------------------------------------- folders
def decode_domain(paths: list[Path], channels: int, preprocess: str, load_size: int, crop_size: int,
                  where: str) -> torch.Tensor:
    """Decode and preprocess every file in threads into one uint8 tensor; unreadable files are skipped."""
    decode = partial(decode_file, channels=channels, preprocess=preprocess, load_size=load_size, crop_size=crop_size)
    rows, _ = decode_many(paths, decode, where)
    if not rows:
        raise GantrainError(f"{where}: none of its {len(paths)} image(s) could be read; check the files")
    check_decoded({tuple(x.shape[-2:]) for x in rows}, preprocess, crop_size, where)
    return torch.stack(rows)


class UnpairedFolder(DataSource):
    """`data=unpaired_folder data.root=DIR`: DIR/trainA, trainB, testA, testB; also the CycleGAN datasets by name.

    With `dataset` set (e.g. horse2zebra) and `download=true`, a missing `root/<dataset>` is fetched from the
    CycleGAN server. Images are decoded once (after the deterministic resize of `preprocess`) and held in
    memory as uint8; training crops `crop_size` at random and flips when `flip=true`. At test time the
    reference loads at crop_size (load = crop), so test images are resized to crop_size, never randomly cropped.
    """

    @dataclass
    class Config(SourceConfig):
        """The keys of configs/data/unpaired_folder.yaml (their values live there)."""

        dataset: Optional[str] = MISSING  # a CycleGAN dataset name: its folder is root/<dataset>
        download: bool = MISSING
        load_size: int = MISSING
        crop_size: int = MISSING
        preprocess: str = MISSING  # resize_and_crop | crop | scale_width | scale_width_and_crop | none
        channels: int = MISSING
        max_dataset_size: Optional[int] = MISSING  # cap on each side (null: all)
        serial_batches: bool = MISSING  # true: B[i mod |B|] instead of a random B
        cache: str = MISSING  # auto | device | host | stream (data/stream.py)
        cache_budget_gb: Optional[float] = MISSING  # auto's budget (null: a fraction of free device/host memory)

    def __init__(self, cfg, seed: int = 0, listing: FolderListing | None = None) -> None:
        super().__init__(cfg, seed, listing)
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
        paths = self.folders.images(sub)
        if not paths:
            raise GantrainError(f"{sub} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); add images or fix data.root")
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
            except UNREADABLE:
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
        c = self.cfg.channels
        return DataInfo(name=self.cfg.name, channels=c, image_size=size, domains=["A", "B"], channels_A=c, channels_B=c)
