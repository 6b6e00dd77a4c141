"""`data=image_folder`: your own images, optionally in class subfolders (which become labels)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from gantrain.data.base import DataInfo, DataSource, InMemoryImages
from gantrain.data.images import decode_all, list_images
from gantrain.errors import GantrainError

log = logging.getLogger(__name__)


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

    Images are decoded once into memory at `image_size` (centre-cropped square); unreadable files are skipped
    and counted in the log.
    """

    @dataclass
    class Config:
        name: str = "image_folder"
        root: Optional[str] = None
        image_size: int = 64
        channels: int = 3
        batch_size: int = 64
        num_workers: int = 0
        flip: bool = True
        labels: bool = True  # class subfolders become labels
        test_fraction: float = 0.1  # used when root has no train/ and test/ folders

    def __init__(self, cfg, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        root = require_folder(cfg.root)
        split_dirs = {s: root / s for s in ("train", "test") if (root / s).is_dir()}
        if "train" in split_dirs:
            files = {s: list_images(d) for s, d in split_dirs.items()}
            files.setdefault("test", [])
            base = {s: d for s, d in split_dirs.items()}
        else:
            every = list_images(root)
            gen = torch.Generator().manual_seed(0)
            order = torch.randperm(len(every), generator=gen).tolist()
            n_test = int(len(every) * cfg.test_fraction)
            files = {"test": sorted(every[i] for i in order[:n_test]), "train": sorted(every[i] for i in order[n_test:])}
            base = {"train": root, "test": root}
        if not files["train"]:
            raise GantrainError(f"data.root={cfg.root} holds no images (.png, .jpg, ...); point it at a folder of images")
        self.class_names = self._classes(files["train"], base["train"]) if cfg.labels else []
        self._splits: dict[str, InMemoryImages] = {}
        for name, paths in files.items():
            images, bad = decode_all(paths, cfg.channels, cfg.image_size)
            if bad:
                log.warning("%s split: skipped %d unreadable image(s) of %d", name, len(bad), len(paths))
            kept = [p for i, p in enumerate(paths) if i not in set(bad)]
            labels = None
            if self.class_names:
                index = {c: i for i, c in enumerate(self.class_names)}
                labels = torch.tensor([index.get(self._class_of(p, base[name]), -1) for p in kept], dtype=torch.long)
                keep = labels >= 0
                images, labels = images[keep], labels[keep]
            self._splits[name] = InMemoryImages(images, labels, flip=cfg.flip)
        if len(self._splits["train"]) == 0:
            raise GantrainError(f"data.root={cfg.root}: none of its images could be read; check the files")

    @staticmethod
    def _class_of(path: Path, base: Path) -> str:
        rel = path.relative_to(base)
        return rel.parts[0] if len(rel.parts) > 1 else ""

    def _classes(self, paths: list[Path], base: Path) -> list[str]:
        names = sorted({self._class_of(p, base) for p in paths})
        return [] if names == [""] or "" in names else names

    @property
    def info(self) -> DataInfo:
        labels = self._splits["train"].labels
        counts = torch.bincount(labels, minlength=len(self.class_names)).tolist() if labels is not None else []
        return DataInfo(
            name="image_folder",
            channels=self.cfg.channels,
            image_size=self.cfg.image_size,
            num_classes=len(self.class_names),
            class_names=self.class_names,
            class_counts=counts,
        )

    def split(self, name: str) -> InMemoryImages:
        return self._splits[name]
