"""Resumable batch streams: the order of batch b in epoch e is a pure function of (seed, epoch, b).

That makes resume exact (skip to the saved batch, no RNG replay) and lets each DDP rank take its own shard.
Item j of batch b also has a fixed key (`item_keys`), from which every random choice for that item is drawn
(see `keys.py`), so the three ways of holding a split give the same batches:

- `device`: uint8 stores on the training device, batches gathered there (no workers, no copies);
- `host`: uint8 stores in (pinned) host memory, batches gathered there and copied without blocking;
- `stream`: files decoded per item by persistent DataLoader workers, pinned, copied without blocking.
"""

from __future__ import annotations

import logging
from contextlib import closing
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from gantrain.data.base import InMemorySplit, to_unit
from gantrain.data.stream import CACHE_MODES, replaced_count
from gantrain.errors import GantrainError

log = logging.getLogger(__name__)

_MIX = 0x9E3779B97F4A7C15
_ITEM = 104729


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    return torch.randperm(n, generator=gen)


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on `device` without blocking the host (pinned first on CUDA)."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


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

    def item_keys(self, epoch: int) -> list[int]:
        """The key of every item this rank sees in `epoch`, in batch order (item j of batch b: seed_b + j * p)."""
        bs, keys = self.batch_size, []
        for b in range(self.batches_per_epoch):
            base = self.batch_seed(epoch, b)
            width = min(bs, self.per_rank - b * bs)
            keys += [(base + j * _ITEM) % (2**63) for j in range(width)]
        return keys

    def epoch(self, epoch: int, start: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        raise NotImplementedError

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[int, int, dict[str, torch.Tensor]]]:
        """`(epoch, index, batch)` from batch `start` of `epoch` on, across epochs without end: one iterator
        for a whole run, resumable mid-epoch. Closing it closes the current epoch (stopping stream workers)."""
        while True:
            with closing(self.epoch(epoch, start)) as batches:
                for index, batch in enumerate(batches, start):
                    yield epoch, index, batch
            epoch, start = epoch + 1, 0


class TensorBatchStream(BatchStream):
    """Batches gathered from in-memory uint8 stores. `host=True` keeps them in host memory (pinned on CUDA)
    and copies each gathered batch without blocking; otherwise they live on the training device.

    The epoch's order and keys go to the device once per epoch, so a step makes no host-device transfer.
    """

    def __init__(self, data: InMemorySplit, device: torch.device, host: bool = False, **kw) -> None:
        super().__init__(len(data), **kw)
        self.device, self.host = device, host and device.type != "cpu"
        if self.host:
            self.data = data.to(torch.device("cpu"))
            if device.type == "cuda":
                self.data = self.data.map(torch.Tensor.pin_memory)
        else:
            self.data = data.to(device)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        where = torch.device("cpu") if self.host else self.device
        order = self.indices(epoch)[: self.batches_per_epoch * self.batch_size]
        keys = torch.tensor(self.item_keys(epoch)[: order.numel()], dtype=torch.long)
        if not self.host:
            order, keys = _to_device(order, where), _to_device(keys, where)
        bs = self.batch_size
        for b in range(start, self.batches_per_epoch):
            sl = slice(b * bs, (b + 1) * bs)
            out = self.data.gather(order[sl], keys[sl])
            if self.host:
                out = {k: _to_device(v, self.device) for k, v in out.items()}
            yield to_unit(out)


class KeyedItems(Dataset):
    """An in-memory-style split as a Dataset keyed by `(index, key)`: item i is row 0 of `gather([i], [key])`,
    which is exactly row j of the batched gather, so streamed batches equal in-memory ones."""

    def __init__(self, split: InMemorySplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key
        before = replaced_count()
        out = {k: v[0] for k, v in self.split.gather(torch.tensor([index]), torch.tensor([seed])).items()}
        out["_unreadable"] = torch.tensor(replaced_count() - before)
        return out


class _KeySampler(Sampler):
    """Yields `(index, key)` lists for batches start.. of one epoch; `epoch_num` and `start` are set before each
    pass, so one DataLoader (and its persistent workers) serves every epoch."""

    def __init__(self, stream: BatchStream) -> None:
        self.stream, self.epoch_num, self.start = stream, 0, 0

    def __iter__(self):
        order = self.stream.indices(self.epoch_num).tolist()
        keys = self.stream.item_keys(self.epoch_num)
        bs = self.stream.batch_size
        for b in range(self.start, self.stream.batches_per_epoch):
            sl = slice(b * bs, (b + 1) * bs)
            yield list(zip(order[sl], keys[sl]))

    def __len__(self) -> int:
        return self.stream.batches_per_epoch - self.start


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # one decode per worker process; more threads only fight over the cores


class LoaderBatchStream(BatchStream):
    """Batches decoded by a DataLoader (persistent background workers) from a Dataset keyed by `(index, key)`.

    Items may carry `_unreadable` (files that failed to decode and were replaced, see `FileRows`): summed on
    the host as batches arrive and logged, never a crash mid-run.
    """

    def __init__(self, dataset: Dataset, device: torch.device, num_workers: int, prefetch: int = 4, **kw) -> None:
        super().__init__(len(dataset), **kw)
        self.dataset, self.device, self.num_workers = dataset, device, num_workers
        self.sampler = _KeySampler(self)
        extra: dict[str, Any] = {}
        if num_workers > 0:
            extra = dict(persistent_workers=True, prefetch_factor=prefetch, worker_init_fn=_worker_init)
        self.loader = DataLoader(
            dataset, batch_sampler=self.sampler, num_workers=num_workers, pin_memory=device.type == "cuda", **extra
        )
        self.unreadable = 0

    def epoch(self, epoch: int, start: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        self.sampler.epoch_num, self.sampler.start = epoch, start
        try:
            for batch in self.loader:
                bad = batch.pop("_unreadable", None)
                if bad is not None and int(bad.sum()):  # a host tensor: no device sync
                    self.unreadable += int(bad.sum())
                    log.warning("stream: %d unreadable file(s) so far, each replaced by the next readable file", self.unreadable)
                yield to_unit({k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()})
        except GeneratorExit:
            # left mid-epoch: training is over (the loop only breaks when done or interrupted). Stop the persistent
            # workers now; left to interpreter exit, their busy prefetch makes the exit wait ~5 s per worker.
            it = getattr(self.loader, "_iterator", None)
            if it is not None:
                it._shutdown_workers()
                self.loader._iterator = None
            raise


def make_batch_stream(
    split: InMemorySplit | Dataset,
    *,
    batch_size: int,
    seed: int,
    device: torch.device,
    num_workers: int = 0,
    cache: str = "device",
    drop_last: bool = True,
    shuffle: bool = True,
    rank: int = 0,
    world: int = 1,
) -> BatchStream:
    """The stream for `split` held as `cache` (device | host | stream, as resolved by the data source)."""
    common = dict(batch_size=batch_size, seed=seed, drop_last=drop_last, shuffle=shuffle, rank=rank, world=world)
    if cache not in CACHE_MODES[1:]:
        raise GantrainError(f"data.cache={cache} is not resolved; choose one of: {', '.join(CACHE_MODES)}")
    if isinstance(split, InMemorySplit):
        if cache == "stream":
            return LoaderBatchStream(KeyedItems(split), device, num_workers, **common)
        return TensorBatchStream(split, device, host=cache == "host", **common)
    return LoaderBatchStream(split, device, num_workers, **common)
