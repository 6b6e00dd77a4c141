"""MNIST, Fashion-MNIST, CIFAR-10 and CelebA through torchvision, with a one-line error when files are missing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import MISSING
from torch.utils.data import Dataset

from gantrain.data.base import DataInfo, DataSource, InMemoryImages, SourceConfig
from gantrain.data.images import resize_uint8
from gantrain.data.listing import FolderListing
from gantrain.errors import GantrainError

_SPECS: dict[str, dict[str, Any]] = {
    "mnist": {"cls": "MNIST", "channels": 1, "folder": "MNIST/raw", "classes": [str(i) for i in range(10)]},
    "fashion_mnist": {
        "cls": "FashionMNIST",
        "channels": 1,
        "folder": "FashionMNIST/raw",
        "classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    },
    "cifar10": {
        "cls": "CIFAR10",
        "channels": 3,
        "folder": "cifar-10-batches-py",
        "classes": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    },
}


def _missing(name: str, root: Path, folder: str, exc: Exception) -> GantrainError:
    return GantrainError(
        f"{name} files not found under {root / folder} ({str(exc).splitlines()[0]}); "
        f"run with data.download=true (needs internet) or put the files there and set data.root"
    )


@dataclass
class TorchvisionConfig(SourceConfig):
    """The keys of configs/data/mnist.yaml (fashion_mnist, cifar10 inherit it) and celeba.yaml."""

    root: str = MISSING
    download: bool = MISSING
    image_size: int = MISSING


class TorchvisionImages(DataSource):
    """`data=mnist|fashion_mnist|cifar10`: the whole split decoded into memory once."""

    Config = TorchvisionConfig

    def __init__(self, cfg, seed: int = 0, listing: FolderListing | None = None) -> None:
        super().__init__(cfg, seed, listing)
        if cfg.name not in _SPECS:
            raise GantrainError(f"unknown torchvision dataset {cfg.name!r}; choose one of: {', '.join(_SPECS)}")
        self.spec = _SPECS[cfg.name]
        self._cache: dict[str, InMemoryImages] = {}

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        import torchvision.datasets as tvd

        root = Path(self.cfg.root).expanduser()
        try:
            ds = getattr(tvd, self.spec["cls"])(str(root), train=train, download=self.cfg.download)
        except (RuntimeError, OSError) as exc:
            raise _missing(self.cfg.name, root, self.spec["folder"], exc) from None
        data = ds.data if torch.is_tensor(ds.data) else torch.from_numpy(np.asarray(ds.data))
        images = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)
        labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
        return resize_uint8(images.contiguous(), self.cfg.image_size), labels

    def split(self, name: str) -> InMemoryImages:
        if name not in self._cache:
            images, labels = self._load(train=name == "train")
            self._cache[name] = InMemoryImages(images, labels, flip=self.cfg.flip)
        return self._cache[name]

    @property
    def info(self) -> DataInfo:
        labels = self.split("train").labels
        return DataInfo(
            name=self.cfg.name,
            channels=self.spec["channels"],
            image_size=self.cfg.image_size,
            num_classes=len(self.spec["classes"]),
            class_names=list(self.spec["classes"]),
            class_counts=torch.bincount(labels, minlength=len(self.spec["classes"])).tolist(),
        )


class _CelebAItems(Dataset):
    def __init__(self, base, size: int, flip: bool) -> None:
        self.base, self.size, self.flip = base, size, flip

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        import torchvision.transforms.functional as TF

        index, seed = key
        img, _ = self.base[index]
        img = TF.resize(TF.center_crop(img, 178), [self.size, self.size], antialias=True)
        x = TF.pil_to_tensor(img).float().div(127.5).sub(1.0)
        if self.flip and torch.rand(1, generator=torch.Generator().manual_seed(seed)).item() < 0.5:
            x = x.flip(-1)
        return {"image": x}


class CelebA(DataSource):
    """`data=celeba`: aligned faces, centre crop 178 then resize (decoded on the fly by DataLoader workers)."""

    Config = TorchvisionConfig

    def split(self, name: str) -> Dataset:
        import torchvision.datasets as tvd

        root = Path(self.cfg.root).expanduser()
        try:
            base = tvd.CelebA(str(root), split="train" if name == "train" else "test", download=self.cfg.download)
        except (RuntimeError, OSError) as exc:
            raise _missing("celeba", root, "celeba", exc) from None
        return _CelebAItems(base, self.cfg.image_size, self.cfg.flip)

    @property
    def info(self) -> DataInfo:
        return DataInfo(name="celeba", channels=3, image_size=self.cfg.image_size)
