"""scikit-learn's bundled handwritten digits (1,797 8x8 images, 10 classes): offline, for tests and quick runs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import MISSING
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from gantrain.data.base import DataInfo, DataSource, InMemoryImages, SourceConfig
from gantrain.data.images import resize_uint8
from gantrain.data.listing import FolderListing

SPLIT_SEED = 0  # the train/test split is fixed, whatever the run's seed
TEST_FRACTION = 0.2


def digits_uint8(image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as (N, 1, S, S) uint8 plus labels."""
    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().mul(255.0 / 16.0).round().clamp(0, 255).to(torch.uint8)
    images = resize_uint8(images.unsqueeze(1), image_size)
    return images, torch.from_numpy(bunch.target).long()


def digits_split_indices() -> dict[str, list[int]]:
    labels = load_digits().target
    train, test = train_test_split(
        list(range(len(labels))), test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    return {"train": sorted(train), "test": sorted(test)}


class Digits(DataSource):
    """`data=digits`: 1,437 train / 360 test images (stratified, fixed split), resized to `image_size`."""

    @dataclass
    class Config(SourceConfig):
        """The keys of configs/data/digits.yaml (their values live there)."""

        image_size: int = MISSING

    def __init__(self, cfg, seed: int = 0, listing: FolderListing | None = None) -> None:
        super().__init__(cfg, seed, listing)
        self._images, self._labels = digits_uint8(cfg.image_size)
        self._split = digits_split_indices()

    @property
    def info(self) -> DataInfo:
        train_labels = self._labels[self._split["train"]]
        return DataInfo(
            name="digits",
            channels=1,
            image_size=self.cfg.image_size,
            num_classes=10,
            class_names=[str(i) for i in range(10)],
            class_counts=torch.bincount(train_labels, minlength=10).tolist(),
        )

    def split(self, name: str) -> InMemoryImages:
        idx = torch.tensor(self._split[name])
        return InMemoryImages(self._images[idx], self._labels[idx], flip=self.cfg.flip)
