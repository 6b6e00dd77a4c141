"""`data=image_folder`: your own images, optionally in class subfolders (which become labels)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Optional

import torch
from omegaconf import MISSING

from gantrain.data.base import DataInfo, DataSource, InMemoryImages, SourceConfig
from gantrain.data.images import decode_all, load_tensor
from gantrain.data.listing import FolderListing
from gantrain.data.stream import FileRows, check_headers, resolve_cache
from gantrain.errors import GantrainError


def require_folder(root: Optional[str], what: str = "data.root") -> Path:
    """A one-line error for a missing, non-directory or empty data folder."""
    if not root:
        raise GantrainError(f"{what} is not set; pass {what}=/path/to/images")
    path = Path(root).expanduser()
    if not path.exists():
        raise GantrainError(f"{what}={root} does not exist; point {what} at a folder of images")
    if not path.is_dir():
        raise GantrainError(f"{what}={root} is not a folder; point {what} at a folder of images")
    return path


class ImageFolder(DataSource):
    """Images under `root` (or `root/train` and `root/test`); subfolders name classes when `labels=true`.

    Images are decoded into memory at `image_size` (centre-cropped square) when first needed, or streamed
    from the files (`data.cache`); unreadable files are skipped and counted in the log.
    """

    @dataclass
    class Config(SourceConfig):
        """The keys of configs/data/image_folder.yaml (their values live there)."""

        image_size: int = MISSING
        channels: int = MISSING
        labels: bool = MISSING  # class subfolders become labels
        test_fraction: float = MISSING  # used when root has no train/ and test/ folders
        cache: str = MISSING  # auto | device | host | stream
        cache_budget_gb: Optional[float] = MISSING  # auto's budget (null: a fraction of free device/host memory)

    def __init__(self, cfg, seed: int = 0, listing: FolderListing | None = None) -> None:
        super().__init__(cfg, seed, listing)
        root = require_folder(cfg.root)
        split_dirs = {s: root / s for s in ("train", "test") if (root / s).is_dir()}
        if "train" in split_dirs:
            files = {s: self.folders.images(d) for s, d in split_dirs.items()}
            files.setdefault("test", [])
            self._base = {s: d for s, d in split_dirs.items()}
        else:
            # a fixed split of the sorted listing: the same files on every start, decoded or streamed
            every = self.folders.images(root)
            gen = torch.Generator().manual_seed(0)
            order = torch.randperm(len(every), generator=gen).tolist()
            n_test = int(len(every) * cfg.test_fraction)
            files = {"test": sorted(every[i] for i in order[:n_test]), "train": sorted(every[i] for i in order[n_test:])}
            self._base = {"train": root, "test": root}
        if not files["train"]:
            raise GantrainError(f"data.root={cfg.root} holds no images (.png, .jpg, ...); point it at a folder of images")
        self._files = files
        self.class_names = self._classes(files["train"], self._base["train"]) if cfg.labels else []
        self._splits: dict[str, InMemoryImages] = {}
        self._mode: str | None = None

    @property
    def cache_mode(self) -> str:
        """`data.cache`, with `auto` resolved from the file count x decoded size (before decoding anything)."""
        if self._mode is None:
            need = len(self._files["train"]) * self.cfg.channels * self.cfg.image_size**2
            self._mode = resolve_cache(self.cfg.cache, need, self.device, self.cfg.cache_budget_gb, str(self.cfg.root))
        return self._mode

    def _labels(self, paths: list[Path], name: str) -> tuple[list[Path], torch.Tensor | None]:
        """The files that have a known class (all, without labels) and their labels."""
        if not self.class_names:
            return paths, None
        index = {c: i for i, c in enumerate(self.class_names)}
        pairs = [(p, index[c]) for p in paths if (c := self._class_of(p, self._base[name])) in index]
        return [p for p, _ in pairs], torch.tensor([i for _, i in pairs], dtype=torch.long)

    def _load(self, name: str) -> InMemoryImages:
        cfg, paths = self.cfg, self._files[name]
        if name == "train" and self.cache_mode == "stream":
            kept, labels = self._labels(check_headers(paths, f"{cfg.root} ({name})"), name)
            size = cfg.image_size
            store = FileRows(kept, partial(load_tensor, channels=cfg.channels, size=size), (len(kept), cfg.channels, size, size))
            return InMemoryImages(store, labels, flip=cfg.flip)
        paths, labels = self._labels(paths, name)
        images, bad = decode_all(paths, cfg.channels, cfg.image_size, f"{cfg.root} ({name})")
        if bad:
            if labels is not None:
                keep = torch.ones(len(paths), dtype=torch.bool)
                keep[bad] = False
                labels = labels[keep]
        return InMemoryImages(images, labels, flip=cfg.flip)

    def split(self, name: str) -> InMemoryImages:
        if name not in self._splits:
            if name not in self._files:
                raise GantrainError(f"data=image_folder has splits train and test, not {name!r}")
            self._splits[name] = self._load(name)
            if name == "train" and len(self._splits[name]) == 0:
                raise GantrainError(f"data.root={self.cfg.root}: none of its images could be read; check the files")
        return self._splits[name]

    @staticmethod
    def _class_of(path: Path, base: Path) -> str:
        rel = path.relative_to(base)
        return rel.parts[0] if len(rel.parts) > 1 else ""

    def _classes(self, paths: list[Path], base: Path) -> list[str]:
        names = sorted({self._class_of(p, base) for p in paths})
        return [] if names == [""] or "" in names else names

    @property
    def info(self) -> DataInfo:
        labels = self.split("train").labels
        counts = torch.bincount(labels, minlength=len(self.class_names)).tolist() if labels is not None else []
        return DataInfo(
            name="image_folder",
            channels=self.cfg.channels,
            image_size=self.cfg.image_size,
            num_classes=len(self.class_names),
            class_names=self.class_names,
            class_counts=counts,
        )

