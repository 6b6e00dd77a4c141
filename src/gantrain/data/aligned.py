"""Paired (aligned) two-domain data for pix2pix: batches `{"A": ..., "B": ...}` where B is A's true translation.

Unlike the unpaired sets, A[i] and B[i] belong together, so every random crop and flip is drawn once per pair
and applied to both images alike. `data.direction` (AtoB | BtoA) does not swap the images: A stays the left
half (or trainA/); the model reads the direction from `info.direction` and picks its input.

Sources: `aligned_folder` (train/ val/ test/ of side-by-side A|B images, or trainA/ trainB/ testA/ testB/ matched
by file name) and the public pix2pix datasets by name (facades, maps, edges2shoes, edges2handbags, night2day);
the embedded `edges2digits` is in `digit_domains.py`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from omegaconf import MISSING

from gantrain.data.augment import crop_and_flip
from gantrain.data.base import DataInfo, DataSource, InMemoryImages, InMemorySplit, SourceConfig, check_direction, take
from gantrain.data.download import download_and_extract
from gantrain.data.images import check_decoded, decode_file, decode_many, open_image, preprocess_image, to_hwc
from gantrain.data.listing import FolderListing
from gantrain.data.stream import FileRows, check_headers, resolve_cache
from gantrain.errors import GantrainError

log = logging.getLogger(__name__)

PIX2PIX_DATASETS = ("facades", "maps", "edges2shoes", "edges2handbags", "night2day")
PIX2PIX_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{name}.tar.gz"
CITYSCAPES_MESSAGE = (
    "Cityscapes cannot be downloaded automatically: its licence requires an account. Register at "
    "https://www.cityscapes-dataset.com, download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip, "
    "build side-by-side A|B images (e.g. with the pix2pix repository's datasets/prepare_cityscapes_dataset.py), "
    "then train with data=aligned_folder data.root=<that folder>"
)


class AlignedImages(InMemorySplit):
    """Paired uint8 images A[i] <-> B[i], held as one (N, C_A + C_B, H, W) store `ab` (a tensor or `FileRows`
    decoding each side-by-side file once), so one gather, crop and flip serve both sides of each pair.

    Evaluation (no keys) takes the centre crop. `labels` (optional) are carried as `label`.
    """

    def __init__(self, a: Any, b: Any | None = None, labels: torch.Tensor | None = None,
                 crop: int | None = None, flip: bool = False, channels_a: int | None = None) -> None:
        """`AlignedImages(a, b)` from two stores, or `AlignedImages(ab, channels_a=C)` from a joined one."""
        if b is not None:
            for name, x in (("A", a), ("B", b)):
                if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[0] == 0:
                    raise ValueError(f"AlignedImages wants a non-empty uint8 (N, C, H, W) tensor for {name}")
            if a.shape[0] != b.shape[0] or a.shape[-2:] != b.shape[-2:]:
                raise ValueError(f"AlignedImages wants A and B of equal count and size, got {tuple(a.shape)} and {tuple(b.shape)}")
            a, channels_a = torch.cat([a, b], 1), a.shape[1]
        if channels_a is None or a.dtype != torch.uint8 or len(a.shape) != 4 or a.shape[0] == 0:
            raise ValueError("AlignedImages wants a non-empty uint8 (N, C_A + C_B, H, W) store and channels_a")
        self.ab, self.ca, self.labels, self.crop, self.flip = a, channels_a, labels, crop, flip

    @property
    def a(self) -> torch.Tensor:
        return self.ab[:, : self.ca]

    @property
    def b(self) -> torch.Tensor:
        return self.ab[:, self.ca :]

    def __len__(self) -> int:
        return self.ab.shape[0]

    @property
    def device(self) -> torch.device:
        return self.ab.device

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "AlignedImages":
        labels = None if self.labels is None else fn(self.labels)
        ab = fn(self.ab) if torch.is_tensor(self.ab) else self.ab
        return AlignedImages(ab, None, labels, self.crop, self.flip, channels_a=self.ca)

    def _augment(self, ab: torch.Tensor, keys: torch.Tensor | None) -> torch.Tensor:
        """One crop and flip per pair: both sides are cut from the same joined store."""
        return crop_and_flip(ab, self.crop, self.flip, keys)

    def gather(self, index: torch.Tensor, keys: torch.Tensor | None) -> dict[str, torch.Tensor]:
        ab = self._augment(take(self.ab, index), keys)
        out = {"A": ab[:, : self.ca], "B": ab[:, self.ca :]}
        if self.labels is not None:
            out["label"] = self.labels.index_select(0, index)
        return out

    def domain(self, name: str) -> InMemoryImages:
        """One side, centre-cropped, as plain images (for evaluation and `gantrain-translate`)."""
        ab = self._augment(self.ab, None)
        return InMemoryImages((ab[:, : self.ca] if name == "A" else ab[:, self.ca :]).contiguous(), self.labels, flip=False)


def paired_info(name: str, channels: int, size: int, direction: str) -> DataInfo:
    """The description of paired A|B data: two domains of `channels` each, true pairs in train and test."""
    return DataInfo(name=name, channels=channels, image_size=size, domains=["A", "B"], channels_A=channels,
                    channels_B=channels, paired=True, paired_test=True, direction=direction)


# ---------------------------------------------------------------------------------------------- folders
def decode_side_by_side(path: Path, channels: int, preprocess: str, load_size: int, crop_size: int) -> torch.Tensor:
    """One A|B file as a (2C, H, W) uint8 tensor; each half is resized on its own, as the reference's
    AlignedDataset does (split before resizing)."""
    im = open_image(path, channels)
    w, h = im.size
    if w % 2:
        raise GantrainError(f"{path} is {w} px wide, which cannot be halved into A|B; each image must hold A left, B right")
    halves = [to_hwc(preprocess_image(im.crop(box), preprocess, load_size, crop_size))
              for box in ((0, 0, w // 2, h), (w // 2, 0, w, h))]
    return torch.from_numpy(np.concatenate(halves, 2)).permute(2, 0, 1).contiguous()


def decode_named_pair(pair: tuple[Path, Path], channels: int, preprocess: str, load_size: int, crop_size: int) -> torch.Tensor:
    """trainA/x and trainB/x as one (2C, H, W) uint8 tensor."""
    a, b = (decode_file(p, channels, preprocess, load_size, crop_size) for p in pair)
    if a.shape[-2:] != b.shape[-2:]:
        raise GantrainError(f"{pair[0]} and {pair[1]} differ in size after preprocessing; use data.preprocess=resize_and_crop")
    return torch.cat([a, b])


class AlignedFolder(DataSource):
    """`data=aligned_folder data.root=DIR`: DIR/train, val, test of side-by-side A|B images (A left, B right),
    or DIR/trainA + trainB (+ testA, testB) with pairs matched by file name. With `dataset` set to a public
    pix2pix set and `download=true`, a missing `root/<dataset>` is fetched first.

    Each half is resized to load_size (resize_and_crop), held in memory as uint8, and cropped to crop_size
    at random per pair in training; evaluation resizes to crop_size (load = crop, no flip), as the reference.
    """

    @dataclass
    class Config(SourceConfig):
        """The keys of configs/data/aligned_folder.yaml (their values live there)."""

        dataset: Optional[str] = MISSING  # facades | maps | edges2shoes | edges2handbags | night2day (| cityscapes: message)
        download: bool = MISSING
        direction: str = MISSING  # AtoB | BtoA
        load_size: int = MISSING
        crop_size: int = MISSING
        preprocess: str = MISSING  # resize_and_crop | crop | none
        channels: int = MISSING
        max_dataset_size: Optional[int] = MISSING
        test_split: str = MISSING  # the folder evaluation reads (test or val), falling back to val, then train
        cache: str = MISSING  # auto | device | host | stream (data/stream.py)
        cache_budget_gb: Optional[float] = MISSING  # auto's budget (null: a fraction of free device/host memory)

    def __init__(self, cfg, seed: int = 0, listing: FolderListing | None = None) -> None:
        super().__init__(cfg, seed, listing)
        check_direction(cfg.direction)
        if cfg.preprocess not in ("resize_and_crop", "crop", "none"):
            raise GantrainError(f"data.preprocess={cfg.preprocess} is not valid for aligned data; choose resize_and_crop, crop or none")
        if cfg.channels not in (1, 3):
            raise GantrainError(f"data.channels must be 1 or 3, got {cfg.channels}")
        if cfg.crop_size > cfg.load_size and cfg.preprocess == "resize_and_crop":
            raise GantrainError(f"data.crop_size={cfg.crop_size} exceeds data.load_size={cfg.load_size}; lower crop_size or raise load_size")
        self.folder = self._locate(cfg)
        self.two_folder = (self.folder / "trainA").is_dir()
        self._splits: dict[str, AlignedImages] = {}
        self._listing: dict[str, tuple[list[Any], Path]] = {}
        self._mode: str | None = None

    @staticmethod
    def _locate(cfg) -> Path:
        if cfg.dataset == "cityscapes":
            raise GantrainError(CITYSCAPES_MESSAGE)
        if not cfg.root:
            raise GantrainError("data.root is not set; pass data.root=/path/to/folder holding train/ (A|B side by side) or trainA/ trainB/")
        root = Path(cfg.root).expanduser()
        folder = root
        if cfg.dataset is not None:
            if cfg.dataset not in PIX2PIX_DATASETS:
                raise GantrainError(f"unknown pix2pix dataset {cfg.dataset!r}; choose one of: {', '.join(PIX2PIX_DATASETS)} (cityscapes: see its licence)")
            # root/pix2pix/<name>: the CycleGAN sets facades and maps (trainA/ ...) live in root/<name>
            folder = root / "pix2pix" / cfg.dataset
            if not folder.is_dir():
                url = PIX2PIX_URL.format(name=cfg.dataset)
                if not cfg.download:
                    raise GantrainError(f"{folder} does not exist; run with data.download=true to fetch {url}, or unpack it there by hand (with train/ inside)")
                download_and_extract(url, root / "pix2pix", folder_name=cfg.dataset, expect=("train",))
        if not folder.is_dir():
            raise GantrainError(f"data.root={folder} is not a folder; it must hold train/ (A|B side by side) or trainA/ trainB/")
        if not (folder / "train").is_dir() and not ((folder / "trainA").is_dir() and (folder / "trainB").is_dir()):
            raise GantrainError(f"{folder} has neither train/ nor trainA/ + trainB/; an aligned dataset needs one of them")
        return folder

    def _phase_dir(self, phase: str) -> str:
        order = [phase] if phase == "train" else [self.cfg.test_split, "val", "test", "train"]
        suffixes = ("A",) if self.two_folder else ("",)
        for cand in order:
            if all((self.folder / f"{cand}{s}").is_dir() for s in suffixes):
                if cand != order[0]:
                    log.warning("%s has no %s split; evaluating on %s", self.folder, order[0], cand)
                return cand
        raise GantrainError(f"{self.folder} has no {phase} split")

    def _items(self, phase: str) -> tuple[list[Any], Path]:
        """The split's files in a fixed order: paths of A|B images, or (A, B) pairs matched by name."""
        if phase in self._listing:
            return self._listing[phase]
        cfg = self.cfg
        name = self._phase_dir(phase)
        if self.two_folder:
            da, db = self.folder / f"{name}A", self.folder / f"{name}B"
            by_a = {p.stem: p for p in self.folders.images(da)}
            by_b = {p.stem: p for p in self.folders.images(db)}
            common = sorted(set(by_a) & set(by_b))
            if not common:
                raise GantrainError(f"{da} and {db} share no file names; pairs are matched by name (e.g. 001.png in both)")
            unmatched = len(by_a) + len(by_b) - 2 * len(common)
            if unmatched:
                log.warning("%s: %d file(s) without a partner of the same name were left out", self.folder, unmatched)
            items: list[Any] = [(by_a[k], by_b[k]) for k in common]
            where = da
        else:
            where = self.folder / name
            items = self.folders.images(where)
            if not items:
                raise GantrainError(f"{where} holds no images; add A|B images or fix data.root")
        if cfg.max_dataset_size is not None:
            items = items[: cfg.max_dataset_size]
        self._listing[phase] = items, where
        return items, where

    def _decoder(self, phase: str) -> Callable[[Any], torch.Tensor]:
        cfg = self.cfg
        load = cfg.load_size if phase == "train" else cfg.crop_size  # test: load = crop
        pair = decode_named_pair if self.two_folder else decode_side_by_side
        return partial(pair, channels=cfg.channels, preprocess=cfg.preprocess, load_size=load, crop_size=cfg.crop_size)

    def _load(self, phase: str) -> Any:
        """The split's joined (N, 2C, H, W) store: decoded into memory, or `FileRows` in stream mode."""
        cfg = self.cfg
        items, where = self._items(phase)
        decode = self._decoder(phase)
        if phase == "train" and self.cache_mode == "stream":
            if self.two_folder:
                ok_a = set(check_headers([a for a, _ in items], str(where)))
                ok_b = set(check_headers([b for _, b in items], str(where)))
                items = [(a, b) for a, b in items if a in ok_a and b in ok_b]
            else:
                items = check_headers(items, str(where))
            shape = self._decoded_shape(items, decode)
            return FileRows(items, decode, (len(items), *shape))

        rows, _ = decode_many(items, decode, str(where))
        if not rows:
            raise GantrainError(f"{where}: none of its {len(items)} image(s) could be read; check the files")
        check_decoded({tuple(x.shape[-2:]) for x in rows}, cfg.preprocess, cfg.crop_size, str(where))
        return torch.stack(rows)

    def _decoded_shape(self, items: list[Any], decode: Callable[[Any], torch.Tensor] | None) -> tuple[int, int, int]:
        """(2C, H, W) of a decoded train pair: known for resize_and_crop, else read from the first readable file."""
        cfg = self.cfg
        if cfg.preprocess == "resize_and_crop" or decode is None:
            return 2 * cfg.channels, cfg.load_size, cfg.load_size  # the other modes: an estimate until decoded
        for item in items:
            try:
                return tuple(decode(item).shape)  # type: ignore[return-value]
            except (OSError, ValueError, SyntaxError):
                continue
        raise GantrainError(f"none of the images under {self.folder} could be read; check the files")

    @property
    def cache_mode(self) -> str:
        """`data.cache`, with `auto` resolved from the pair count x decoded size (before decoding anything)."""
        if self._mode is None:
            c, h, w = self._decoded_shape([], None)
            need = len(self._items("train")[0]) * c * h * w
            self._mode = resolve_cache(self.cfg.cache, need, self.device, self.cfg.cache_budget_gb, str(self.folder))
        return self._mode

    def split(self, name: str) -> AlignedImages:
        if name not in ("train", "test"):
            raise GantrainError(f"an aligned folder has splits train and test, not {name!r}")
        if name not in self._splits:
            crop = self.cfg.crop_size if self.cfg.preprocess != "none" else None
            self._splits[name] = AlignedImages(self._load(name), None, crop=crop, flip=self.cfg.flip and name == "train",
                                               channels_a=self.cfg.channels)
        return self._splits[name]

    @property
    def info(self) -> DataInfo:
        train = self.split("train")
        size = self.cfg.crop_size if self.cfg.preprocess != "none" else int(train.ab.shape[-1])
        return paired_info(self.cfg.name, self.cfg.channels, size, self.cfg.direction)
