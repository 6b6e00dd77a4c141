"""Runs the metrics named in `eval.metrics` on freshly generated samples; the single registry of metrics."""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch

from gantrain.data.base import DataInfo, DataSource, InMemoryImages
from gantrain.errors import GantrainError
from gantrain.metrics.classifier import classify, load_or_train
from gantrain.metrics.frechet import frechet_distance_features
from gantrain.metrics.latent import LATENT_METRICS

log = logging.getLogger(__name__)


class ClassifierMetrics:
    """Class balance of the samples and the Fréchet distance in the dataset classifier's feature space.

    Reported: `cls_fd` (generated vs real test split), `cls_fd_ref` (real train vs real test: the floor to
    compare against), `cls_fd_ratio`, `classes_present`, `max_class_share`, and `cond_accuracy` (share
    classified as the requested label) for conditional families.
    """

    name = "classifier"

    def __init__(self, cfg, data: DataSource, info: DataInfo, device: torch.device) -> None:
        self.cfg, self.data, self.info, self.device = cfg, data, info, device
        self._net = None

    def _setup(self) -> None:
        train, test = self.data.split("train"), self.data.split(self.cfg.eval.split)
        if not isinstance(train, InMemoryImages) or not isinstance(test, InMemoryImages):
            raise GantrainError(f"the classifier metric needs an in-memory labelled dataset; data={self.info.name} is not one")
        self._net, self.protocol = load_or_train(
            self.info.name, train, test, self.info.channels, self.info.num_classes, self.device, self.cfg.eval.classifier_cache
        )
        train_feats, _ = classify(self._net, train.batch(torch.arange(len(train)))["image"], self.device)
        self.test_feats, _ = classify(self._net, test.batch(torch.arange(len(test)))["image"], self.device)
        self.fd_ref = frechet_distance_features(train_feats, self.test_feats)

    def __call__(self, fake: torch.Tensor, labels: torch.Tensor | None) -> dict[str, float]:
        if self._net is None:
            self._setup()
        feats, logits = classify(self._net, fake, self.device)
        pred = logits.argmax(1)
        share = torch.bincount(pred, minlength=self.info.num_classes).double() / len(pred)
        fd = frechet_distance_features(feats, self.test_feats)
        out = {
            "cls_fd": fd,
            "cls_fd_ref": self.fd_ref,
            "cls_fd_ratio": fd / max(self.fd_ref, 1e-12),
            "classes_present": int((share > 0).sum()),
            "max_class_share": float(share.max()),
            "classifier_test_accuracy": self.protocol["test_accuracy"],
        }
        if labels is not None:
            out["cond_accuracy"] = float((pred == labels.cpu()).double().mean())
        return out


METRICS: dict[str, Callable[..., Any]] = {"classifier": ClassifierMetrics}
METRICS.update(LATENT_METRICS)


class Evaluator:
    def __init__(self, cfg, data: DataSource, info: DataInfo, device: torch.device) -> None:
        unknown = [m for m in cfg.eval.metrics if m not in METRICS]
        if unknown:
            raise GantrainError(f"unknown eval.metrics {unknown}; choose from: {', '.join(sorted(METRICS))}")
        self.cfg, self.device = cfg, device
        self.metrics = [METRICS[m](cfg, data, info, device) for m in cfg.eval.metrics]

    @torch.no_grad()
    def generate(self, model, nets, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        gen = torch.Generator().manual_seed(self.cfg.eval.seed)
        images, labels = [], []
        done = 0
        while done < n:
            k = min(self.cfg.eval.batch_size, n - done)
            inputs = model.fixed_inputs(k, gen)
            images.append(model.generate(inputs, nets).float().cpu())
            if "label" in inputs:
                labels.append(inputs["label"].cpu())
            done += k
        return torch.cat(images), (torch.cat(labels) if labels else None)

    def __call__(self, model, nets, step: int) -> dict[str, float]:
        results: dict[str, float] = {}
        on_samples = [m for m in self.metrics if not getattr(m, "needs_model", False)]
        if on_samples:
            fake, labels = self.generate(model, nets, self.cfg.eval.num_samples)
            for metric in on_samples:
                results.update(metric(fake, labels))
        for metric in self.metrics:  # metrics that drive the model themselves (e.g. translation)
            if getattr(metric, "needs_model", False):
                results.update(metric.evaluate(model, nets))
        log.info("step %d eval: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in results.items()))
        return results
