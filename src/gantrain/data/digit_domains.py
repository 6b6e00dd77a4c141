"""The embedded, offline translation sets built from scikit-learn's digits (32 px, grey), for tests and quick runs.

- `digits2negative` / `digits2edges` (unpaired): domain A = the digit, B = `transform(digit)`; the two training
  domains come from disjoint halves of the digits train split, so no training pair exists.
- `edges2digits` (paired, pix2pix): A = the edge map maxpool3x3(x) - x of a digit x, B = x.

Each keeps the digits' labels, so metrics can check classes and measure the distance to the true translation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from gantrain.data.aligned import AlignedImages, paired_info
from gantrain.data.base import DataInfo, DataSource, InMemoryImages, SourceConfig, check_direction
from gantrain.data.digits import digits_split_indices, digits_uint8
from gantrain.data.listing import FolderListing
from gantrain.data.unpaired import UnpairedImages
from gantrain.errors import GantrainError


def negative(x: torch.Tensor) -> torch.Tensor:
    """Domain B of digits2negative: 1 - x for x in [0, 1]."""
    return 1.0 - x


def edges(x: torch.Tensor) -> torch.Tensor:
    """A 3x3 dilation minus the digit (x in [0, 1]), i.e. its outer outline: B of digits2edges, A of edges2digits."""
    return F.max_pool2d(x, 3, stride=1, padding=1) - x


def apply_uint8(transform: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """`transform` of uint8 digits, computed on x in [0, 1], back to uint8."""
    return (transform(images.float() / 255.0) * 255.0).round().clamp(0, 255).to(torch.uint8)


def _require_grey(cfg) -> None:
    if cfg.channels != 1:
        raise GantrainError(f"data={cfg.name} is grey: set data.channels=1 (got {cfg.channels})")


def _class_info(info: DataInfo, labels: torch.Tensor) -> DataInfo:
    """`info` with the ten digit classes and the train split's class counts."""
    info.num_classes, info.class_names = 10, [str(i) for i in range(10)]
    info.class_counts = torch.bincount(labels, minlength=10).tolist()
    return info


class DigitsUnpaired(DataSource):
    """Digits with domain A = the digit and domain B = `transform(digit)`.

    Train: the digits train split is cut into two disjoint halves (fixed, stratified by class), A from one and
    B from the other, so no training pair exists. Test: every test digit in both domains (A and its exact
    B counterpart), which lets metrics check classes and measure the distance to the true translation.
    """

    transform: Callable[[torch.Tensor], torch.Tensor]
    inverse_b: Callable[[torch.Tensor], torch.Tensor] | None = None  # B -> A exactly, where one exists

    @dataclass
    class Config(SourceConfig):
        """The keys of configs/data/digits2negative.yaml and digits2edges.yaml (their values live there)."""

        image_size: int = MISSING
        channels: int = MISSING

    def __init__(self, cfg, seed: int = 0, listing: FolderListing | None = None) -> None:
        super().__init__(cfg, seed, listing)
        _require_grey(cfg)
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
        return apply_uint8(cls.transform, images)

    @property
    def info(self) -> DataInfo:
        info = DataInfo(name=self.cfg.name, channels=1, image_size=self.cfg.image_size, domains=["A", "B"],
                        channels_A=1, channels_B=1, paired_test=True)
        return _class_info(info, self._splits["train"].labels_a)

    def split(self, name: str) -> UnpairedImages:
        if name not in self._splits:
            raise GantrainError(f"data={self.cfg.name} has splits train and test, not {name!r}")
        return self._splits[name]


class Digits2Negative(DigitsUnpaired):
    """`data=digits2negative`: digit <-> its photographic negative (white digit on black <-> black on white)."""

    transform = staticmethod(negative)
    inverse_b = staticmethod(negative)


class Digits2Edges(DigitsUnpaired):
    """`data=digits2edges`: digit <-> its outline (dilation minus digit)."""

    transform = staticmethod(edges)


class Edges2Digits(DataSource):
    """`data=edges2digits`: A = the edge map maxpool3x3(x) - x of a digit x in [0, 1], B = x (32 px, grey).

    The digits' fixed split: 1,437 train pairs, 360 test pairs, with labels (the classifier metric reads the
    translated digits). `labelled_domain` gives either side of a split for training domain classifiers.
    """

    @dataclass
    class Config(SourceConfig):
        """The keys of configs/data/edges2digits.yaml (their values live there)."""

        image_size: int = MISSING
        channels: int = MISSING
        direction: str = MISSING  # AtoB: edges -> digit | BtoA: digit -> edges

    # which project classifier reads each side: B is the plain digits (shares data=digits' cached classifier)
    classifier_names = {"A": "edges2digits_A", "B": "digits"}

    def __init__(self, cfg, seed: int = 0, listing: FolderListing | None = None) -> None:
        super().__init__(cfg, seed, listing)
        check_direction(cfg.direction)
        _require_grey(cfg)
        self._images, self._labels = digits_uint8(cfg.image_size)
        self._edges = self.edge_map(self._images)
        self._index = {k: torch.tensor(v) for k, v in digits_split_indices().items()}

    @staticmethod
    def edge_map(images: torch.Tensor) -> torch.Tensor:
        """uint8 digits -> uint8 edge maps, maxpool3x3(x) - x computed on x in [0, 1]."""
        return apply_uint8(edges, images)

    def labelled_domain(self, side: str, split: str) -> InMemoryImages:
        idx = self._index[split]
        return InMemoryImages((self._edges if side == "A" else self._images)[idx], self._labels[idx])

    @property
    def info(self) -> DataInfo:
        info = paired_info(self.cfg.name, 1, self.cfg.image_size, self.cfg.direction)
        return _class_info(info, self._labels[self._index["train"]])

    def split(self, name: str) -> AlignedImages:
        if name not in self._index:
            raise GantrainError(f"data=edges2digits has splits train and test, not {name!r}")
        idx = self._index[name]
        return AlignedImages(self._edges[idx], self._images[idx], self._labels[idx], flip=self.cfg.flip and name == "train")
