"""Attribute accuracy of text-to-image samples (`eval.metrics=[text2image]`).

A project-side classifier with one head per attribute (for shapes: colour, shape, size, position) is trained on
the real training images and cached like the dataset classifiers; it then reads the attributes of images
generated from test-split captions. Reported: `attr_acc_<name>` per attribute, `attr_acc_all` (every attribute
right), and `attr_real_acc_<name>` (the classifier on real test images: the ceiling). Data with a `shape` attribute
(shapes) also gets the pixel-level fill-ratio reading of `shape_fill` beside the classifier's shape accuracy.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from gantrain.data.captions import CaptionedImages
from gantrain.errors import GantrainError
from gantrain.metrics.base import EvalContext, EvalSetup, Metric, register
from gantrain.metrics.shape_fill import fill_scores
from gantrain.nets.classifier import SmallClassifier, cache_file, cached_net, train_seeded

log = logging.getLogger(__name__)

VERSION = 1
EPOCHS = 4
SEED = 0


class AttributeClassifier(nn.Module):
    """A shared conv trunk with one linear head per attribute."""

    def __init__(self, channels: int, sizes: list[int], width: int = 32) -> None:
        super().__init__()
        self.trunk = SmallClassifier(channels, 1, width).trunk
        self.heads = nn.ModuleList(nn.Linear(4 * width, k) for k in sizes)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f = self.trunk(x)
        return [head(f) for head in self.heads]


def _train(train: CaptionedImages, channels: int, sizes: list[int], device: torch.device) -> AttributeClassifier:
    def batches(gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            idx = torch.randint(len(train), (64,), generator=gen)
            yield train.images[idx].float().div(127.5).sub(1.0), train.attrs[idx]

    def loss(heads: list[torch.Tensor], attrs: torch.Tensor) -> torch.Tensor:
        return sum(F.cross_entropy(out, attrs[:, a]) for a, out in enumerate(heads))

    steps = EPOCHS * max(len(train) // 64, 1)
    return train_seeded(lambda: AttributeClassifier(channels, sizes), batches, loss, steps, 3e-3, device, SEED)


@torch.no_grad()
def predict(net: AttributeClassifier, images: torch.Tensor, device: torch.device, batch: int = 500) -> torch.Tensor:
    """(N, A) predicted attribute indices for images in [-1, 1]."""
    out = [torch.stack([o.argmax(1) for o in net(chunk.to(device).float())], 1).cpu() for chunk in images.split(batch)]
    return torch.cat(out)


def load_or_train(dataset: str, train: CaptionedImages, test: CaptionedImages, names: list[str], sizes: list[int],
                  channels: int, device: torch.device, folder: str | None = None) -> tuple[AttributeClassifier, dict[str, Any]]:
    key = {"dataset": dataset, "image_size": train.images.shape[-1], "channels": channels, "attributes": names,
           "sizes": sizes, "n_train": len(train), "epochs": EPOCHS, "seed": SEED, "version": VERSION}
    path = cache_file(f"{dataset}-attributes", key, folder)

    def train_net() -> tuple[AttributeClassifier, dict[str, Any]]:
        log.info("training the %s attribute classifier for metrics (cached at %s)", dataset, path)
        net = _train(train, channels, sizes, device)
        pred = predict(net, test.images.float().div(127.5).sub(1.0), device)
        real_acc = {n: float((pred[:, a] == test.attrs[:, a].cpu()).float().mean()) for a, n in enumerate(names)}
        return net, {**key, "test_accuracy": real_acc}

    return cached_net(path, lambda: AttributeClassifier(channels, sizes), train_net, device)


@register("text2image")
class TextToImageMetrics(Metric):
    """Attribute accuracy of images generated from test captions, beside the classifier's accuracy on real ones."""

    @classmethod
    def check(cls, setup: EvalSetup) -> None:
        if not setup.info.attributes:
            raise cls.incompatible(setup, "needs a captioned dataset with attributes (data=shapes)", "use eval=none or other metrics")
        if getattr(setup.model, "conditioning", None) != "text":
            raise cls.incompatible(setup, "needs a text-to-image model whose samples carry caption attributes",
                                   "train model=gan_cls")

    def __init__(self, setup: EvalSetup) -> None:
        super().__init__(setup)
        self.attributes: dict[str, list[str]] = dict(setup.info.attributes)
        self._net: AttributeClassifier | None = None
        self._real: tuple[torch.Tensor, torch.Tensor] | None = None  # eval-split images and their shapes (fill ratio)

    def _setup(self) -> None:
        train, test = self.data.split("train"), self.data.split(self.cfg.eval.split)
        if not isinstance(train, CaptionedImages) or train.attrs is None or not isinstance(test, CaptionedImages):
            raise GantrainError(f"eval.metrics=[text2image] needs a captioned dataset with attributes (data=shapes); "
                                f"data={self.info.name} has none: use eval=none or other metrics")
        names = list(self.attributes)
        self._net, self.protocol = load_or_train(
            self.info.name, train, test, names, [len(v) for v in self.attributes.values()], self.info.channels,
            self.device, self.cfg.eval.classifier_cache,
        )
        if "shape" in self.attributes:
            self._real = test.images.float().div(127.5).sub(1.0).cpu(), test.attrs[:, names.index("shape")].cpu()

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        fake, labels = ctx.fake, ctx.labels
        if self._net is None:
            self._setup()
        pred = predict(self._net, fake, self.device)
        right = pred == labels.cpu()
        out: dict[str, float] = {}
        for a, name in enumerate(self.attributes):
            out[f"attr_acc_{name}"] = float(right[:, a].float().mean())
            out[f"attr_real_acc_{name}"] = float(self.protocol["test_accuracy"][name])
        out["attr_acc_all"] = float(right.all(1).float().mean())
        if self._real is not None:
            shape = list(self.attributes).index("shape")
            out.update(fill_scores(fake, labels[:, shape].cpu(), *self._real, self.attributes["shape"]))
        return out
