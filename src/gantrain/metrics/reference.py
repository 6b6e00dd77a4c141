"""Reference (real-image) features, cached on disk keyed by everything that changes them.

The key holds the dataset and its settings, the split, the resolution, the backbone's protocol (network,
weights hash, resizer) and the number of images: change any of them and the statistics are recomputed,
never silently reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch.utils.data import Dataset

from gantrain.data.base import DataSource, InMemorySplit
from gantrain.errors import GantrainError
from gantrain.metrics.backbones import Backbone
from gantrain.trainer.checkpoint import save_atomic

log = logging.getLogger(__name__)

REFERENCE_VERSION = 1
SUBSET_SEED = 0  # which real images when eval.num_real is below the split size
_IRRELEVANT = {"batch_size", "num_workers", "download"}  # data settings that do not change the images


def cache_dir(configured: str | None) -> Path:
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "gantrain" / "reference"


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
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    side = f"{split}{domain or ''}"  # test, or testB for one domain
    path = cache_dir(cfg.eval.reference_cache) / f"{data.info.name}-{side}-{backbone.name}-{digest}.pt"
    if path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            return blob["features"], {**key, "cache_file": str(path)}
        except Exception as exc:  # a broken cache file is rebuilt, not fatal
            log.warning("reference cache %s unreadable (%s); recomputing", path, exc)
    log.info("computing %s reference features of %s/%s (%d images), cached at %s", backbone.name, data.info.name, split, n, path)
    feats = backbone.features(real_images(source, n))
    save_atomic({"features": feats, "key": json.loads(json.dumps(key, default=str))}, path)
    return feats, {**key, "cache_file": str(path)}
