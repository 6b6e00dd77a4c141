"""What every dataset provides: a description (`DataInfo`) and its train/test splits."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Optional

import torch
from omegaconf import MISSING
from torch.utils.data import Dataset

from gantrain.data.augment import random_flip
from gantrain.data.keys import keys_from
from gantrain.data.listing import FolderListing
from gantrain.errors import GantrainError

# Batch entries that hold images: gathered as uint8, turned into [-1, 1] floats where the batch is used.
IMAGE_KEYS = ("image", "A", "B")
Keys = torch.Tensor | torch.Generator | None


# The two translation directions of two-domain data: A -> B and B -> A.
DIRECTIONS = ("AtoB", "BtoA")


def check_direction(direction: str, key: str = "data.direction") -> None:
    """One line naming `key` unless `direction` is AtoB or BtoA."""
    if direction not in DIRECTIONS:
        raise GantrainError(f"{key}={direction} is not valid; choose AtoB or BtoA")


@dataclass
class DataInfo:
    """Everything a model needs to know about its data; stored in checkpoints so sampling needs no dataset.

    Two-domain (translation) data sets `domains=["A", "B"]` and each side's channels (`channels_A`/`channels_B`
    default to `channels`); `paired`: train items are true pairs A[i] <-> B[i] (pix2pix), translated in
    `direction`; `paired_test`: the test split's B[i] is A[i]'s true translation (metrics measure the distance).
    Captioned data sets `vocab` and `max_len` (token ids), and `attributes` (names per attribute) where known.
    """

    name: str
    channels: int
    image_size: int
    num_classes: int = 0
    class_names: list[str] = field(default_factory=list)
    class_counts: list[int] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    channels_A: Optional[int] = None
    channels_B: Optional[int] = None
    paired: bool = False
    paired_test: bool = False
    direction: str = "AtoB"
    vocab: list[str] = field(default_factory=list)
    max_len: int = 32
    attributes: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.channels_A = self.channels if self.channels_A is None else self.channels_A
        self.channels_B = self.channels if self.channels_B is None else self.channels_B

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataInfo":
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise GantrainError(f"the checkpoint's data_info has unknown field(s) {', '.join(sorted(unknown))}: it was "
                                f"written by another gantrain version; load it with that version or retrain")
        return cls(**data)


def to_unit(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """uint8 image entries -> floats in [-1, 1] (done last, on the training device: 4x less to copy)."""
    return {k: v.float().div_(127.5).sub_(1.0) if k in IMAGE_KEYS and v.dtype == torch.uint8 else v for k, v in batch.items()}


def take(rows: Any, index: torch.Tensor) -> torch.Tensor:
    """Rows of an image store: a uint8 tensor (a gather) or a `FileRows` (decoded from files)."""
    return rows.index_select(0, index)


class InMemorySplit(ABC):
    """A split batched by gathers from uint8 image stores: the fast path, with no per-item Python work.

    `gather(index, keys)` builds one batch (uint8 images); every random choice in it is `draw(keys, ...)` of
    the items' keys, per item, so resume is exact, any device gives the same batch, and a `FileRows` store
    (decoding files per item in DataLoader workers) gives the same batch as a tensor store. `keys=None`
    means evaluation: no augmentation.
    """

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "InMemorySplit":
        """The same split with `fn` applied to every tensor it holds (moves, pinning)."""

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @abstractmethod
    def gather(self, index: torch.Tensor, keys: torch.Tensor | None) -> dict[str, torch.Tensor]: ...

    def to(self, device: torch.device) -> "InMemorySplit":
        return self.map(lambda t: t.to(device))

    def batch(self, index: torch.Tensor, keys: Keys = None) -> dict[str, torch.Tensor]:
        """One batch as floats in [-1, 1]; `keys` may be a generator (drawn into keys) for callers that hold one."""
        index = index.to(self.device)
        if isinstance(keys, torch.Generator):
            keys = keys_from(keys, index.numel(), self.device)
        elif keys is not None:
            keys = keys.to(self.device)
        return to_unit(self.gather(index, keys))


class InMemoryImages(InMemorySplit):
    """Decoded images held as uint8 (N, C, H, W) plus optional labels; optional random horizontal flips."""

    def __init__(self, images: Any, labels: torch.Tensor | None = None, flip: bool = False) -> None:
        if images.dtype != torch.uint8 or len(images.shape) != 4:
            raise ValueError("InMemoryImages wants a uint8 tensor shaped (N, C, H, W)")
        self.images = images
        self.labels = labels
        self.flip = flip

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "InMemoryImages":
        labels = None if self.labels is None else fn(self.labels)
        images = fn(self.images) if torch.is_tensor(self.images) else self.images
        return InMemoryImages(images, labels, self.flip)

    def gather(self, index: torch.Tensor, keys: torch.Tensor | None) -> dict[str, torch.Tensor]:
        x = take(self.images, index)
        if keys is not None and self.flip:
            x = random_flip(x, keys)
        out = {"image": x}
        if self.labels is not None:
            out["label"] = self.labels.index_select(0, index)
        return out


@dataclass
class SourceConfig:
    """The keys every data YAML sets; each source's `Config` adds its own. Fields are declared, never given
    values: the YAML is the one source of them, and a key it lacks is a one-line error at validation."""

    name: str = MISSING
    root: Optional[str] = MISSING
    batch_size: int = MISSING
    num_workers: int = MISSING
    flip: bool = MISSING


class DataSource(ABC):
    """A dataset family selected with `data=<name>`; subclasses declare a `Config` (a `SourceConfig`: their schema)."""

    Config: type

    def __init__(self, cfg: Any, seed: int = 0, listing: FolderListing | None = None) -> None:
        self.cfg = cfg
        self.seed = seed
        self.folders = listing or FolderListing()  # the run's stored file listings (folder sources read them)
        self.device = torch.device("cpu")

    def on_device(self, device: torch.device) -> "DataSource":
        """Where batches will be built: folder sources size their `data.cache=auto` budget by it."""
        self.device = torch.device(device)
        return self

    @property
    def cache_mode(self) -> str:
        """How the train split is held: `device` (gathers on the training device), `host` or `stream`."""
        return "device"

    @property
    @abstractmethod
    def info(self) -> DataInfo:
        """Shape, classes and other facts about the data."""

    @abstractmethod
    def split(self, name: str) -> InMemorySplit | Dataset:
        """The `train` or `test` split: in-memory images, or a Dataset whose keys are `(index, seed)` pairs."""
