"""Feature networks behind FID, KID and IS, registered by name in `BACKBONES` (chosen with `eval.backbone`).

A backbone maps [-1, 1] images to `pool` features (for FID/KID) and class `logits` (for IS), and describes
itself in `protocol` (name, weights hash, resize): that record travels with every score and keys the cached
reference statistics. `inception` is the standard; `classifier` is the dataset's own classifier
(nets/classifier.py), for data where Inception features say little (the digits, small grey images).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from gantrain.data.base import DataInfo, DataSource, InMemoryImages
from gantrain.errors import GantrainError
from gantrain.metrics import inception
from gantrain.nets.classifier import classify, load_or_train


class Backbone:
    """Base class: `name`, `protocol` (a JSON-able dict) and `features`."""

    name: str = ""
    protocol: dict[str, Any]

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"pool": (N, D) float64, "logits": (N, K)} on the CPU for [-1, 1] images (N, C, H, W)."""
        raise NotImplementedError


class InceptionBackbone(Backbone):
    name = "inception"

    def __init__(self, cfg, data: DataSource, info: DataInfo, device: torch.device) -> None:
        ecfg = cfg.eval
        if ecfg.resize not in inception.RESIZERS:
            raise GantrainError(f"eval.resize={ecfg.resize} is not valid; choose one of: {', '.join(inception.RESIZERS)}")
        path, digest = inception.resolve_weights(ecfg.inception_weights, ecfg.inception_download)
        self.net = inception.load_extractor(path, device)
        self.device, self.resize, self.batch = device, ecfg.resize, ecfg.batch_size
        self.protocol = {
            "backbone": "inception-v3 (torch-fidelity port of the TF 2015-12-05 graph)",
            "weights_file": inception.WEIGHTS_FILE,
            "weights_sha256": digest,
            "resize": f"{ecfg.resize}: {info.image_size}x{info.image_size} -> {inception.INPUT_SIZE}x{inception.INPUT_SIZE}",
            "resize_detail": inception.RESIZERS[ecfg.resize],
            "input": "uint8-quantised, grey repeated to RGB" if info.channels == 1 else "uint8-quantised RGB",
            "feature_layer": "pool3 (2048); IS on logits_unbiased",
        }

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        pools, logits = [], []
        for chunk in images.split(self.batch):
            x = inception.resize_for_inception(inception.to_uint8_rgb(chunk), self.resize).to(self.device)
            pool, logit = self.net(x)
            pools.append(pool.double().cpu())
            logits.append(logit.double().cpu())
        return {"pool": torch.cat(pools), "logits": torch.cat(logits)}


class ClassifierBackbone(Backbone):
    name = "classifier"

    def __init__(self, cfg, data: DataSource, info: DataInfo, device: torch.device) -> None:
        train, test = data.split("train"), data.split(cfg.eval.split)
        if not isinstance(train, InMemoryImages) or not isinstance(test, InMemoryImages):
            raise GantrainError(f"the classifier backbone needs an in-memory labelled dataset; data={info.name} is not one")
        self.net, cls_protocol = load_or_train(info.name, train, test, info.channels, info.num_classes, device, cfg.eval.classifier_cache)
        self.device = device
        self.protocol = {
            "backbone": f"{info.name} classifier (nets/classifier.py, trained on the train split)",
            "weights_sha256": cls_protocol["weights_sha256"],
            "classifier": cls_protocol,
            "resize": f"none (native {info.image_size}x{info.image_size})",
            "input": "float [-1, 1]",
            "feature_layer": f"global pool ({self.net.feature_dim}); IS on its {info.num_classes} logits",
        }

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        pool, logits = classify(self.net, images, self.device)
        return {"pool": pool, "logits": logits.double()}


BACKBONES: dict[str, Callable[..., Backbone]] = {"inception": InceptionBackbone, "classifier": ClassifierBackbone}
