"""Resumable batch streams: the order of batch b in epoch e is a pure function of (seed, epoch, b).

That makes resume exact (skip to the saved batch, no RNG replay) and lets each DDP rank take its own shard.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from gantrain.data.base import InMemorySplit
from gantrain.errors import GantrainError

_MIX = 0x9E3779B97F4A7C15


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    return torch.randperm(n, generator=gen)


class BatchStream:
    """Yields the batches of one epoch from a given batch index on."""

    def __init__(self, n: int, batch_size: int, seed: int, drop_last: bool, shuffle: bool, rank: int, world: int) -> None:
        per_rank = n // world
        if batch_size > per_rank:
            where = f" per rank ({world} ranks)" if world > 1 else ""
            raise GantrainError(
                f"data.batch_size={batch_size} is larger than the training set ({n} images{where}); lower data.batch_size"
            )
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.drop_last, self.shuffle, self.rank, self.world = drop_last, shuffle, rank, world
        self.per_rank = per_rank
        self.batches_per_epoch = per_rank // batch_size if drop_last else -(-per_rank // batch_size)

    def __len__(self) -> int:
        return self.batches_per_epoch

    def indices(self, epoch: int) -> torch.Tensor:
        order = epoch_permutation(self.n, self.seed, epoch) if self.shuffle else torch.arange(self.n)
        return order[self.rank : self.per_rank * self.world : self.world]

    def batch_seed(self, epoch: int, batch: int) -> int:
        return (epoch_seed(self.seed, epoch) + (batch * self.world + self.rank + 1) * _MIX) % (2**63)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        raise NotImplementedError


class TensorBatchStream(BatchStream):
    """Batches gathered from in-memory uint8 images on the training device."""

    def __init__(self, data: InMemorySplit, device: torch.device, **kw) -> None:
        super().__init__(len(data), **kw)
        self.data = data.to(device)
        self.device = device

    def epoch(self, epoch: int, start: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        order = self.indices(epoch)
        for b in range(start, self.batches_per_epoch):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield self.data.batch(idx, torch.Generator().manual_seed(self.batch_seed(epoch, b)))


class _KeySampler(Sampler):
    """Yields `(index, seed)` keys, so per-item augmentation is reproducible whichever worker runs it."""

    def __init__(self, stream: BatchStream, epoch: int, start: int) -> None:
        self.stream, self.epoch_num, self.start = stream, epoch, start

    def __iter__(self):
        order = self.stream.indices(self.epoch_num).tolist()
        bs = self.stream.batch_size
        for b in range(self.start, self.stream.batches_per_epoch):
            base = self.stream.batch_seed(self.epoch_num, b)
            yield [(i, (base + j * 104729) % (2**63)) for j, i in enumerate(order[b * bs : (b + 1) * bs])]

    def __len__(self) -> int:
        return self.stream.batches_per_epoch - self.start


class LoaderBatchStream(BatchStream):
    """Batches decoded by a DataLoader (background workers) from a Dataset keyed by `(index, seed)`."""

    def __init__(self, dataset: Dataset, device: torch.device, num_workers: int, **kw) -> None:
        super().__init__(len(dataset), **kw)
        self.dataset, self.device, self.num_workers = dataset, device, num_workers

    def epoch(self, epoch: int, start: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        loader = DataLoader(
            self.dataset,
            batch_sampler=_KeySampler(self, epoch, start),
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )
        for batch in loader:
            yield {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def make_batch_stream(
    split: InMemorySplit | Dataset,
    *,
    batch_size: int,
    seed: int,
    device: torch.device,
    num_workers: int = 0,
    drop_last: bool = True,
    shuffle: bool = True,
    rank: int = 0,
    world: int = 1,
) -> BatchStream:
    common = dict(batch_size=batch_size, seed=seed, drop_last=drop_last, shuffle=shuffle, rank=rank, world=world)
    if isinstance(split, InMemorySplit):
        return TensorBatchStream(split, device, **common)
    return LoaderBatchStream(split, device, num_workers, **common)
