"""Paired (aligned) two-domain data for pix2pix: batches `{"A": ..., "B": ...}` where B is A's true translation.

Unlike the unpaired sets, A[i] and B[i] belong together, so every random crop and flip is drawn once per pair
and applied to both images alike. `data.direction` (AtoB | BtoA) does not swap the images: A stays the left
half (or trainA/); the model reads the direction from `info.extra["direction"]` and picks its input.

Sources: `edges2digits` (embedded, offline: A = the edge map maxpool3x3(x) - x, B = the digit x, 32 px grey),
`aligned_folder` (train/ val/ test/ of side-by-side A|B images, or trainA/ trainB/ testA/ testB/ matched by
file name), and the public pix2pix datasets by name (facades, maps, edges2shoes, edges2handbags, night2day).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from gantrain.data.base import DataInfo, DataSource, InMemoryImages, InMemorySplit
from gantrain.data.digits import digits_split_indices, digits_uint8
from gantrain.data.download import download_and_extract
from gantrain.data.unpaired import _random_flip, _to_float, decode_domain, edges, list_domain, open_image, preprocess_image
from gantrain.errors import GantrainError

log = logging.getLogger(__name__)

DIRECTIONS = ("AtoB", "BtoA")
PIX2PIX_DATASETS = ("facades", "maps", "edges2shoes", "edges2handbags", "night2day")
PIX2PIX_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{name}.tar.gz"
CITYSCAPES_MESSAGE = (
    "Cityscapes cannot be downloaded automatically: its licence requires an account. Register at "
    "https://www.cityscapes-dataset.com, download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip, "
    "build side-by-side A|B images (e.g. with the pix2pix repository's datasets/prepare_cityscapes_dataset.py), "
    "then train with data=aligned_folder data.root=<that folder>"
)


def check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise GantrainError(f"data.direction={direction} is not valid; choose AtoB or BtoA")


def _pair_crop(a: torch.Tensor, b: torch.Tensor, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One random size x size window per pair, the same for A and B (one gather over both)."""
    both = torch.cat([a, b], 1)
    n, _, h, w = both.shape
    top = torch.randint(0, h - size + 1, (n,), generator=gen).to(both.device)
    left = torch.randint(0, w - size + 1, (n,), generator=gen).to(both.device)
    ar = torch.arange(size, device=both.device)
    rows = (top[:, None] + ar)[:, None, :, None]
    cols = (left[:, None] + ar)[:, None, None, :]
    batch = torch.arange(n, device=both.device)[:, None, None, None]
    chans = torch.arange(both.shape[1], device=both.device)[None, :, None, None]
    out = both[batch, chans, rows, cols]
    return out[:, : a.shape[1]], out[:, a.shape[1] :]


class AlignedImages(InMemorySplit):
    """Paired uint8 images A[i] <-> B[i] (N, C, H, W); random crop to `crop` and flips shared by each pair.

    Evaluation (no generator) takes the centre crop. `labels` (optional) are carried as `label`.
    """

    def __init__(self, a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor | None = None,
                 crop: int | None = None, flip: bool = False) -> None:
        for name, x in (("A", a), ("B", b)):
            if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[0] == 0:
                raise ValueError(f"AlignedImages wants a non-empty uint8 (N, C, H, W) tensor for {name}")
        if a.shape[0] != b.shape[0] or a.shape[-2:] != b.shape[-2:]:
            raise ValueError(f"AlignedImages wants A and B of equal count and size, got {tuple(a.shape)} and {tuple(b.shape)}")
        self.a, self.b, self.labels, self.crop, self.flip = a, b, labels, crop, flip

    def __len__(self) -> int:
        return self.a.shape[0]

    def to(self, device: torch.device) -> "AlignedImages":
        labels = None if self.labels is None else self.labels.to(device)
        return AlignedImages(self.a.to(device), self.b.to(device), labels, self.crop, self.flip)

    def _augment(self, a: torch.Tensor, b: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = a.shape[-2:]
        if self.crop is not None and (h, w) != (self.crop, self.crop):
            if gen is None:
                top, left = (h - self.crop) // 2, (w - self.crop) // 2
                a = a[..., top : top + self.crop, left : left + self.crop]
                b = b[..., top : top + self.crop, left : left + self.crop]
            else:
                a, b = _pair_crop(a, b, self.crop, gen)
        if self.flip and gen is not None:
            both = _random_flip(torch.cat([a, b], 1), gen)
            a, b = both[:, : a.shape[1]], both[:, a.shape[1] :]
        return a, b

    def batch(self, index: torch.Tensor, gen: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        index = index.to(self.a.device)
        a, b = self._augment(self.a.index_select(0, index), self.b.index_select(0, index), gen)
        out = {"A": _to_float(a), "B": _to_float(b)}
        if self.labels is not None:
            out["label"] = self.labels.index_select(0, index)
        return out

    def domain(self, name: str) -> InMemoryImages:
        """One side, centre-cropped, as plain images (for evaluation and `gantrain-translate`)."""
        a, b = self._augment(self.a, self.b, None)
        return InMemoryImages((a if name == "A" else b).contiguous(), self.labels, flip=False)


def _info(name: str, channels: int, size: int, direction: str, n: int, **extra) -> DataInfo:
    return DataInfo(
        name=name, channels=channels, image_size=size,
        extra={"domains": ["A", "B"], "channels_A": channels, "channels_B": channels, "paired": True,
               "paired_test": True, "direction": direction, "size_A": n, "size_B": n, **extra},
    )


# ---------------------------------------------------------------------------------------------- digits
class Edges2Digits(DataSource):
    """`data=edges2digits`: A = the edge map maxpool3x3(x) - x of a digit x in [0, 1], B = x (32 px, grey).

    The digits' fixed split: 1,437 train pairs, 360 test pairs, with labels (the classifier metric reads the
    translated digits). `labelled_domain` gives either side of a split for training domain classifiers.
    """

    @dataclass
    class Config:
        name: str = "edges2digits"
        root: Optional[str] = None  # unused: the digits ship with scikit-learn
        image_size: int = 32
        channels: int = 1
        direction: str = "AtoB"  # AtoB: edges -> digit | BtoA: digit -> edges
        batch_size: int = 1
        num_workers: int = 0
        flip: bool = False  # mirrored digits are not digits

    # which project classifier reads each side: B is the plain digits (shares data=digits' cached classifier)
    classifier_names = {"A": "edges2digits_A", "B": "digits"}

    def __init__(self, cfg, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        check_direction(cfg.direction)
        if cfg.channels != 1:
            raise GantrainError(f"data=edges2digits is grey: set data.channels=1 (got {cfg.channels})")
        images, labels = digits_uint8(cfg.image_size)
        self._images, self._labels = images, labels
        self._edges = self.edge_map(images)
        self._index = {k: torch.tensor(v) for k, v in digits_split_indices().items()}

    @staticmethod
    def edge_map(images: torch.Tensor) -> torch.Tensor:
        """uint8 digits -> uint8 edge maps, maxpool3x3(x) - x computed on x in [0, 1]."""
        x = images.float() / 255.0
        return (edges(x) * 255.0).round().clamp(0, 255).to(torch.uint8)

    def labelled_domain(self, side: str, split: str) -> InMemoryImages:
        idx = self._index[split]
        return InMemoryImages((self._edges if side == "A" else self._images)[idx], self._labels[idx])

    @property
    def info(self) -> DataInfo:
        train = self._index["train"]
        info = _info(self.cfg.name, 1, self.cfg.image_size, self.cfg.direction, len(train))
        info.num_classes = 10
        info.class_names = [str(i) for i in range(10)]
        info.class_counts = torch.bincount(self._labels[train], minlength=10).tolist()
        return info

    def split(self, name: str) -> AlignedImages:
        if name not in self._index:
            raise GantrainError(f"data=edges2digits has splits train and test, not {name!r}")
        idx = self._index[name]
        return AlignedImages(self._edges[idx], self._images[idx], self._labels[idx], flip=self.cfg.flip and name == "train")


# ---------------------------------------------------------------------------------------------- folders
class AlignedFolder(DataSource):
    """`data=aligned_folder data.root=DIR`: DIR/train, val, test of side-by-side A|B images (A left, B right),
    or DIR/trainA + trainB (+ testA, testB) with pairs matched by file name. With `dataset` set to a public
    pix2pix set and `download=true`, a missing `root/<dataset>` is fetched first.

    Each half is resized to load_size (resize_and_crop), held in memory as uint8, and cropped to crop_size
    at random per pair in training; evaluation resizes to crop_size (load = crop, no flip), as the reference.
    """

    @dataclass
    class Config:
        name: str = "aligned_folder"
        root: Optional[str] = None
        dataset: Optional[str] = None  # facades | maps | edges2shoes | edges2handbags | night2day (| cityscapes: message)
        download: bool = False
        direction: str = "AtoB"  # AtoB | BtoA
        load_size: int = 286
        crop_size: int = 256
        preprocess: str = "resize_and_crop"  # resize_and_crop | crop | none
        flip: bool = True
        channels: int = 3
        batch_size: int = 1
        num_workers: int = 0
        max_dataset_size: Optional[int] = None
        test_split: str = "test"  # the folder evaluation reads (test or val), falling back to val, then train

    def __init__(self, cfg, seed: int = 0) -> None:
        super().__init__(cfg, seed)
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

    def _decode(self, paths: list[Path], phase: str, where: str) -> torch.Tensor:
        cfg = self.cfg
        load = cfg.load_size if phase == "train" else cfg.crop_size  # test: load = crop
        return decode_domain(paths, cfg.channels, cfg.preprocess, load, cfg.crop_size, where)

    def _phase_dir(self, phase: str) -> str:
        order = [phase] if phase == "train" else [self.cfg.test_split, "val", "test", "train"]
        suffixes = ("A",) if self.two_folder else ("",)
        for cand in order:
            if all((self.folder / f"{cand}{s}").is_dir() for s in suffixes):
                if cand != order[0]:
                    log.warning("%s has no %s split; evaluating on %s", self.folder, order[0], cand)
                return cand
        raise GantrainError(f"{self.folder} has no {phase} split")

    def _load(self, phase: str) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        name = self._phase_dir(phase)
        if self.two_folder:
            da, db = self.folder / f"{name}A", self.folder / f"{name}B"
            by_a = {p.stem: p for p in list_domain(da)}
            by_b = {p.stem: p for p in list_domain(db)}
            common = sorted(set(by_a) & set(by_b))
            if not common:
                raise GantrainError(f"{da} and {db} share no file names; pairs are matched by name (e.g. 001.png in both)")
            unmatched = len(by_a) + len(by_b) - 2 * len(common)
            if unmatched:
                log.warning("%s: %d file(s) without a partner of the same name were left out", self.folder, unmatched)
            if cfg.max_dataset_size is not None:
                common = common[: cfg.max_dataset_size]
            a = self._decode([by_a[k] for k in common], phase, str(da))
            b = self._decode([by_b[k] for k in common], phase, str(db))
            if a.shape[-2:] != b.shape[-2:]:
                raise GantrainError(f"{da} and {db} images differ in size after preprocessing; use data.preprocess=resize_and_crop")
            return a, b
        sub = self.folder / name
        paths = list_domain(sub)
        if not paths:
            raise GantrainError(f"{sub} holds no images; add A|B images or fix data.root")
        if cfg.max_dataset_size is not None:
            paths = paths[: cfg.max_dataset_size]
        # Split before resizing (each half is resized on its own, as the reference's AlignedDataset does).
        halves_a, halves_b = [], []
        load = cfg.load_size if phase == "train" else cfg.crop_size
        for p in paths:
            try:
                im = open_image(p, cfg.channels)
            except (OSError, ValueError, SyntaxError) as exc:
                log.warning("skipping unreadable image %s (%s)", p, exc)
                continue
            w, h = im.size
            if w % 2:
                raise GantrainError(f"{p} is {w} px wide, which cannot be halved into A|B; each image must hold A left, B right")
            for half, box in ((halves_a, (0, 0, w // 2, h)), (halves_b, (w // 2, 0, w, h))):
                arr = np.asarray(preprocess_image(im.crop(box), cfg.preprocess, load, cfg.crop_size), dtype=np.uint8)
                half.append(arr[:, :, None] if arr.ndim == 2 else arr)
        if not halves_a:
            raise GantrainError(f"{sub}: none of its {len(paths)} image(s) could be read; check the files")
        if len({x.shape for x in halves_a}) > 1:
            raise GantrainError(f"{sub}: images have different sizes after data.preprocess={cfg.preprocess}; use data.preprocess=resize_and_crop")
        to_t = lambda xs: torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()  # noqa: E731
        a, b = to_t(halves_a), to_t(halves_b)
        if cfg.preprocess != "none" and min(a.shape[-2:]) < cfg.crop_size:
            raise GantrainError(f"{sub}: halves are {a.shape[-1]}x{a.shape[-2]}, smaller than data.crop_size={cfg.crop_size}; lower data.crop_size")
        return a, b

    def split(self, name: str) -> AlignedImages:
        if name not in ("train", "test"):
            raise GantrainError(f"an aligned folder has splits train and test, not {name!r}")
        if name not in self._splits:
            a, b = self._load(name)
            crop = self.cfg.crop_size if self.cfg.preprocess != "none" else None
            self._splits[name] = AlignedImages(a, b, crop=crop, flip=self.cfg.flip and name == "train")
        return self._splits[name]

    @property
    def info(self) -> DataInfo:
        train = self.split("train")
        size = self.cfg.crop_size if self.cfg.preprocess != "none" else int(train.a.shape[-1])
        return _info(self.cfg.name, self.cfg.channels, size, self.cfg.direction, len(train), folder=str(self.folder))
