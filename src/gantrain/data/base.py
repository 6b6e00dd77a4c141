"""What every dataset provides: a description (`DataInfo`) and its train/test splits."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset


@dataclass
class DataInfo:
    """Everything a model needs to know about its data; stored in checkpoints so sampling needs no dataset."""

    name: str
    channels: int
    image_size: int
    num_classes: int = 0
    class_names: list[str] = field(default_factory=list)
    class_counts: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataInfo":
        return cls(**data)


class InMemorySplit(ABC):
    """A split held in memory (typically uint8 on the training device) and batched by gathers: the fast path,
    with no per-item Python work and no worker processes.

    `batch(index, gen)` builds one batch; all its randomness (flips, crops, unpaired partners) must come from
    `gen`, a CPU generator seeded per batch, so that resume is exact.
    """

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def to(self, device: torch.device) -> "InMemorySplit": ...

    @abstractmethod
    def batch(self, index: torch.Tensor, gen: torch.Generator | None = None) -> dict[str, torch.Tensor]: ...


class InMemoryImages(InMemorySplit):
    """Decoded images held as uint8 (N, C, H, W) plus optional labels; optional random horizontal flips."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None, flip: bool = False) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError("InMemoryImages wants a uint8 tensor shaped (N, C, H, W)")
        self.images = images
        self.labels = labels
        self.flip = flip

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device) -> "InMemoryImages":
        labels = None if self.labels is None else self.labels.to(device)
        return InMemoryImages(self.images.to(device), labels, self.flip)

    def batch(self, index: torch.Tensor, gen: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        index = index.to(self.images.device)
        x = self.images.index_select(0, index).float().div_(127.5).sub_(1.0)
        if gen is not None and self.flip:
            flip = (torch.rand(index.numel(), generator=gen) < 0.5).to(x.device)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        out = {"image": x}
        if self.labels is not None:
            out["label"] = self.labels.index_select(0, index)
        return out


class DataSource(ABC):
    """A dataset family selected with `data=<name>`; subclasses declare a `Config` dataclass (their schema)."""

    Config: type

    def __init__(self, cfg: Any, seed: int = 0) -> None:
        self.cfg = cfg
        self.seed = seed

    @property
    @abstractmethod
    def info(self) -> DataInfo:
        """Shape, classes and other facts about the data."""

    @abstractmethod
    def split(self, name: str) -> InMemorySplit | Dataset:
        """The `train` or `test` split: in-memory images, or a Dataset whose keys are `(index, seed)` pairs."""
