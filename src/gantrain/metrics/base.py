"""The metric contract: what a metric sees, the `Metric` base class, and the `METRICS` registry.

A metric is a `Metric` subclass registered under the name `eval.metrics` uses:

    @register("cycle_l1")
    class CycleL1(Metric):
        @classmethod
        def check(cls, setup: EvalSetup) -> None:       # before the first training step
            if not setup.model.directions:
                raise cls.incompatible(setup, "scores translations", "use a translation family (model=cyclegan)")

        def __call__(self, ctx: EvalContext) -> dict[str, float]:
            return {"cycle_l1": ...}

It lives in its own module under `gantrain/metrics/` and imports this module and the helpers below it
(frechet, classifier, backbones, reference), never the evaluator: the evaluator imports every module of the
package, so a new module is all a new metric needs.

Life of a metric: `check(setup)` once for every configured metric (cheap: model capabilities and data kind,
so an unfit metric is one line before training), then `cls(setup)` once (feature nets, reference
statistics), then `metric(ctx)` at each evaluation. It returns a flat `{key: float}` (keys become
`eval/<key>`, what `eval.monitor` and `optimized_metric` name) and may fill `self.protocol`, a JSON-able
record (feature network, weights hash, counts, ...) stored beside the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, TypeVar

import torch

from gantrain.data.base import DataInfo, DataSource
from gantrain.errors import GantrainError
from gantrain.metrics.backbones import BACKBONES, Backbone
from gantrain.metrics.reference import reference_features

References = dict[tuple[str, str, str | None], tuple[dict[str, torch.Tensor], dict[str, Any]]]


@dataclass
class EvalSetup:
    """What a metric sees once, at set-up: the config, the data, the model it will score, and shared caches.

    `model` is the trained family (a `GANModel` or a `--weights` translator): metrics read its declared
    capabilities (`directions`, `conditioning`, `nets`) to check they fit, and sample from it later.
    """

    cfg: Any
    data: DataSource
    model: Any
    device: torch.device
    _backbones: dict[str, Backbone] = field(default_factory=dict)
    _references: References = field(default_factory=dict)

    @property
    def info(self) -> DataInfo:
        return self.data.info

    def two_domain(self) -> bool:
        """Whether the data has domains A and B (then feature metrics score translations)."""
        return bool(self.info.domains)

    def backbone(self, name: str) -> Backbone:
        """The feature network `name` of metrics/backbones.py, built once per run and shared by every metric."""
        if name not in self._backbones:
            if name not in BACKBONES:
                raise GantrainError(f"unknown backbone {name!r}; choose from: {', '.join(sorted(BACKBONES))}")
            self._backbones[name] = BACKBONES[name](self.cfg, self.data, self.info, self.device)
        return self._backbones[name]

    def reference(self, backbone: str, split: str | None = None,
                  domain: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Real-image features of `split` (default `eval.split`), optionally of one domain, cached on disk."""
        key = (backbone, split or self.cfg.eval.split, domain)
        if key not in self._references:
            self._references[key] = reference_features(self.cfg, self.data, self.backbone(backbone), key[1], domain)
        return self._references[key]


@dataclass
class EvalContext:
    """What a metric sees at each evaluation: the set-up, the nets to sample with (EMA copies or None for
    the live nets), the step, and the generated batch shared by all metrics (drawn lazily, once)."""

    setup: EvalSetup
    nets: torch.nn.ModuleDict | None = None
    step: int = 0
    protocol: dict[str, Any] = field(default_factory=dict)
    _fake: tuple[torch.Tensor, torch.Tensor | None] | None = None
    _features: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)

    @property
    def cfg(self) -> Any:
        return self.setup.cfg

    @property
    def data(self) -> DataSource:
        return self.setup.data

    @property
    def info(self) -> DataInfo:
        return self.setup.info

    @property
    def model(self) -> Any:
        return self.setup.model

    @property
    def device(self) -> torch.device:
        return self.setup.device

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from `eval.seed` (+ offset): evaluations are repeatable."""
        return torch.Generator().manual_seed(self.cfg.eval.seed + offset)

    @torch.no_grad()
    def _generated(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`eval.num_samples` images from `model.fixed_inputs` drawn with `eval.seed`: the same inputs each time."""
        if self._fake is None:
            e, gen = self.cfg.eval, self.generator()
            images, labels, done = [], [], 0
            while done < e.num_samples:
                k = min(e.batch_size, e.num_samples - done)
                inputs = self.model.fixed_inputs(k, gen)
                images.append(self.model.generate(inputs, self.nets).float().cpu())
                if "label" in inputs:
                    labels.append(inputs["label"].cpu())
                done += k
            self._fake = torch.cat(images), (torch.cat(labels) if labels else None)
        return self._fake

    @property
    def fake(self) -> torch.Tensor:
        """The generated images, in [-1, 1] on the CPU."""
        return self._generated()[0]

    @property
    def labels(self) -> torch.Tensor | None:
        """The labels (or caption attributes) the images were generated from; None for unconditional families."""
        return self._generated()[1]

    def fake_features(self, backbone: Backbone) -> dict[str, torch.Tensor]:
        """Features of `fake`, computed once per backbone per evaluation (FID and KID share them)."""
        if backbone.name not in self._features:
            self._features[backbone.name] = backbone.features(self.fake)
        return self._features[backbone.name]

    @torch.no_grad()
    def translated_features(self, backbone: Backbone, direction: str) -> dict[str, torch.Tensor]:
        """Features of the whole `eval.split` of the source domain translated, once per evaluation."""
        key = f"{backbone.name}:{direction}"
        if key not in self._features:
            source = self.data.split(self.cfg.eval.split).domain(direction[0])
            fakes = []
            for idx in torch.arange(len(source)).split(self.cfg.eval.batch_size):
                x = source.batch(idx)["image"].to(self.device)
                fakes.append(self.model.translate(x, direction, self.nets).float().cpu())
            self._features[key] = backbone.features(torch.cat(fakes))
        return self._features[key]


class Metric:
    """Base of every registered metric (see the module docstring); `name` is set by `register`."""

    name: ClassVar[str] = ""

    def __init__(self, setup: EvalSetup) -> None:
        self.setup = setup
        self.cfg, self.data, self.info, self.device = setup.cfg, setup.data, setup.info, setup.device
        self.protocol: dict[str, Any] = {}

    @classmethod
    def check(cls, setup: EvalSetup) -> None:
        """Raise `cls.incompatible(...)` when this metric cannot score `setup.model` on `setup.data`."""

    @classmethod
    def incompatible(cls, setup: EvalSetup, needs: str, fix: str) -> GantrainError:
        """The one-line error for a metric that does not fit the run: the metric, the model and data, the fix."""
        return GantrainError(f"eval.metrics=[{cls.name}] {needs}; model={setup.model.cfg.name} "
                             f"data={setup.info.name} does not fit: {fix}")

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        raise NotImplementedError


M = TypeVar("M", bound=type[Metric])
METRICS: dict[str, type[Metric]] = {}


def register(name: str) -> Callable[[M], M]:
    """Class decorator: make a `Metric` available as `eval.metrics=[name]`."""

    def add(cls: M) -> M:
        if name in METRICS and METRICS[name] is not cls:
            raise GantrainError(f"two metrics are registered as {name!r}: {METRICS[name].__module__} and {cls.__module__}")
        cls.name = name
        METRICS[name] = cls
        return cls

    return add

