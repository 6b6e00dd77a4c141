"""Reference (real-image) features, cached on disk keyed by everything that changes them.

The key holds the dataset and its settings, the split, the resolution, the backbone's protocol (network,
weights hash, resizer) and the number of images: change any of them and the statistics are recomputed,
never silently reused.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import torch
from omegaconf import OmegaConf
from torch.utils.data import Dataset

from gantrain.data.base import DataSource, InMemorySplit
from gantrain.errors import GantrainError
from gantrain.io import cache_path, cache_folder, load_or_build
from gantrain.metrics.backbones import Backbone

log = logging.getLogger(__name__)

REFERENCE_VERSION = 1
SUBSET_SEED = 0  # which real images when eval.num_real is below the split size
_IRRELEVANT = {"batch_size", "num_workers", "download"}  # data settings that do not change the images


def real_images(split: InMemorySplit | Dataset, n: int, batch: int = 500) -> torch.Tensor:
    """The first `n` images of a fixed permutation of `split`, as [-1, 1] floats on the CPU, without augmentation."""
    total = len(split)
    order = torch.randperm(total, generator=torch.Generator().manual_seed(SUBSET_SEED))[:n] if n < total else torch.arange(total)
    chunks = []
    for idx in order.split(batch):
        if isinstance(split, InMemorySplit):
            item = split.batch(idx)
            if "image" not in item:
                raise GantrainError("this dataset's batches have no 'image' key; FID/KID/IS need single-domain images")
            chunks.append(item["image"].float().cpu())
        else:  # a Dataset keyed by (index, seed): the seed is the index, so reruns see the same images
            chunks.append(torch.stack([split[(int(i), int(i))]["image"] for i in idx]).float().cpu())
    return torch.cat(chunks)


def reference_key(cfg, data_name: str, split: str, n: int, backbone: Backbone, domain: str | None = None) -> dict[str, Any]:
    data_cfg = {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items() if k not in _IRRELEVANT}
    key = {
        "dataset": data_name, "data": data_cfg, "split": split, "resolution": cfg.data.get("image_size"),
        "n": n, "subset_seed": SUBSET_SEED, "backbone": backbone.protocol, "version": REFERENCE_VERSION,
    }
    if domain is not None:  # only two-domain keys carry it, so existing single-domain cache files stay valid
        key["domain"] = domain
    return key


def reference_features(cfg, data: DataSource, backbone: Backbone, split: str,
                       domain: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """({"pool", "logits"} of the real split, its key plus the cache file), computed once and cached.

    `domain` ("A" or "B") selects one side of two-domain data: the images a translation into it is compared with.
    """
    try:
        source = data.split(split)
    except (KeyError, ValueError) as exc:
        raise GantrainError(f"data={data.info.name} has no split {split!r} ({exc}); pass eval.split=train or test") from None
    if domain is not None:
        source = source.domain(domain)
    total = len(source)
    n = total if cfg.eval.num_real is None else min(int(cfg.eval.num_real), total)
    key = reference_key(cfg, data.info.name, split, n, backbone, domain)
    side = f"{split}{domain or ''}"  # test, or testB for one domain
    path = cache_path(cache_folder(cfg.eval.reference_cache, "reference"), f"{data.info.name}-{side}-{backbone.name}", key)

    def compute() -> dict[str, Any]:
        log.info("computing %s reference features of %s/%s (%d images), cached at %s", backbone.name, data.info.name, split, n, path)
        return {"features": backbone.features(real_images(source, n)), "key": json.loads(json.dumps(key, default=str))}

    return load_or_build(path, compute, lambda blob: blob["features"]), {**key, "cache_file": str(path)}
