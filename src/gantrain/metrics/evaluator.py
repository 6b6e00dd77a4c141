"""Every metric gantrain computes, in the single registry `METRICS`, and the `Evaluator` that runs them.

Interface (for family metrics added in their own modules)
---------------------------------------------------------
`METRICS` maps the name used in `eval.metrics` to either

* a class, built once per run as `cls(ctx_setup: EvalSetup)` and then called as `metric(ctx: EvalContext)`
  at every evaluation, or
* a plain function called as `fn(ctx: EvalContext)`.

Either returns a flat `{key: float}` dict (keys become `eval/<key>` in TensorBoard and metrics.jsonl and are
what `eval.monitor` and `optimized_metric` name). A class may also set `self.protocol` (a JSON-able dict:
feature network, weights hash, split, counts, ...), recorded beside the numbers; a function may write into
`ctx.protocol[name]`. Register from the family's module, e.g. in models/cyclegan.py:

    from gantrain.metrics.evaluator import METRICS
    METRICS["cycle_l1"] = cycle_l1          # def cycle_l1(ctx: EvalContext) -> dict[str, float]

and make sure the module is imported when the metric is configured (the trainer and gantrain-eval import the
run's model module before building the Evaluator, so registering at import time of the family is enough).

`EvalContext` gives a metric the model (`ctx.model`), the nets to sample with (`ctx.nets`: the EMA copies or
None for the live nets), the data source and its info (`ctx.data`, `ctx.info`), the whole config (`ctx.cfg`,
`ctx.cfg.eval` for the eval settings), the device, the step, a seeded generator, and the generated batch
(`ctx.fake` in [-1, 1] on the CPU with `ctx.labels` for conditional families: drawn lazily once, from
`model.fixed_inputs` with `eval.seed`, shared by all metrics). `ctx.backbone(name)` gives a cached feature
network from metrics/backbones.py and `ctx.reference(name, split)` its cached real-image features.

On two-domain data `fid` and `kid` score translations, per direction the model has (`model.directions`): the
whole `eval.split` of the source domain translated, against the real images of the target domain
(`eval.translation_reference`: its test split, or train + test), keys `fid_AtoB`, `kid_AtoB`, `kid_AtoB_std`, ...
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from gantrain.data.base import DIRECTIONS, DataInfo, DataSource
from gantrain.errors import GantrainError
from gantrain.metrics.backbones import BACKBONES, Backbone
from gantrain.metrics.frechet import frechet_distance_features, kid_from_features
from gantrain.metrics.reference import reference_features

log = logging.getLogger(__name__)


@dataclass
class EvalSetup:
    """What a metric class sees once, when it is built."""

    cfg: Any
    data: DataSource
    info: DataInfo
    device: torch.device
    evaluator: "Evaluator"

    def backbone(self, name: str) -> Backbone:
        return self.evaluator.backbone(name)

    def reference(self, backbone: str, split: str | None = None,
                  domain: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return self.evaluator.reference(backbone, split or self.cfg.eval.split, domain)


@dataclass
class EvalContext(EvalSetup):
    """What a metric sees at each evaluation (see the module docstring)."""

    model: Any = None
    nets: torch.nn.ModuleDict | None = None
    step: int = 0
    protocol: dict[str, Any] = field(default_factory=dict)
    _fake: tuple[torch.Tensor, torch.Tensor | None] | None = None
    _features: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from `eval.seed` (+ offset): evaluations are repeatable."""
        return torch.Generator().manual_seed(self.cfg.eval.seed + offset)

    def _generated(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self._fake is None:
            self._fake = self.evaluator.generate(self.model, self.nets, self.cfg.eval.num_samples)
        return self._fake

    @property
    def fake(self) -> torch.Tensor:
        return self._generated()[0]

    @property
    def labels(self) -> torch.Tensor | None:
        return self._generated()[1]


def _suffix(setup: EvalSetup) -> str:
    """Keys carry the backbone unless it is the standard Inception (`fid` vs `fid_classifier`)."""
    name = setup.cfg.eval.backbone
    return "" if name == "inception" else f"_{name}"


# How translation FID/KID choose the real images of the target domain (eval.translation_reference).
TRANSLATION_PROTOCOLS = {
    "test": "CUT paper (Park et al. 2020): translated test images of the source vs the real test images of the target",
    "train+test": "GAN Compression (Li et al. 2020): translated test images vs the real train + test images of the target",
}


class _FeatureMetric:
    """Shared set-up of FID/KID/IS: the backbone and, where needed, the real features.

    Building the backbone here (at evaluator set-up, before training) is what makes missing Inception weights
    fail in the first second of a run rather than at its end.
    """

    needs_reference = True

    def __init__(self, setup: EvalSetup) -> None:
        self.setup = setup
        self.suffix = _suffix(setup)
        self.backbone = setup.backbone(setup.cfg.eval.backbone)
        self.protocol: dict[str, Any] = {**self.backbone.protocol}
        self.translated = bool(setup.info.domains)  # two-domain data: translations are scored, per direction
        e = setup.cfg.eval
        if not self.needs_reference:
            return
        if self.translated:  # real features per target domain, on first use: the model says which directions exist
            if e.translation_reference == "train+test" and e.split == "train":
                raise GantrainError("eval.translation_reference=train+test needs eval.split=test (the train split is already in it)")
            self._real: dict[str, torch.Tensor] = {}
            self.protocol.update(
                protocol=TRANSLATION_PROTOCOLS[e.translation_reference], translation_reference=e.translation_reference,
                source_split=e.split, image_size=setup.info.image_size,
            )
            return
        self.real, ref_key = setup.reference(e.backbone)
        self.protocol.update(reference_split=ref_key["split"], num_real=ref_key["n"], reference_cache=ref_key["cache_file"])

    def fake_features(self, ctx: EvalContext) -> dict[str, torch.Tensor]:
        return ctx.evaluator.fake_features(ctx, self.backbone)

    def directions(self, ctx: EvalContext) -> tuple[str, ...]:
        if not hasattr(ctx.model, "translate"):
            raise GantrainError(f"fid/kid/is on two-domain data score translations; model={ctx.cfg.model.name} does not translate")
        return tuple(getattr(ctx.model, "directions", DIRECTIONS))

    def direction_pair(self, ctx: EvalContext, direction: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(real target-domain, translated source-domain) pool features of one direction; counts go to the protocol."""
        src, dst = direction[0], direction[-1]
        e = ctx.cfg.eval
        splits = ["train", e.split] if e.translation_reference == "train+test" else [e.split]
        if dst not in self._real:
            refs = [self.setup.reference(e.backbone, s, dst) for s in splits]
            self._real[dst] = torch.cat([feats["pool"] for feats, _ in refs])
            self.protocol[f"reference_{dst}"] = {
                "splits": [f"{key['split']}{dst}" for _, key in refs], "num_real": int(len(self._real[dst])),
                "reference_cache": [key["cache_file"] for _, key in refs],
            }
        fake = ctx.evaluator.translated_features(ctx, self.backbone, direction)["pool"]
        self.protocol[direction] = {"source": f"{e.split}{src}", "num_fake": int(len(fake)), "reference": f"reference_{dst}",
                                    "num_real": int(len(self._real[dst]))}
        return self._real[dst], fake


def fid_from_features(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID by torch-fidelity's implementation (scipy sqrtm on float64 statistics)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    stats = [fid_features_to_statistics(f.double()) for f in (real, fake)]
    return float(fid_statistics_to_metric(stats[0], stats[1], verbose=False)["frechet_inception_distance"])


def inception_score(logits: torch.Tensor, splits: int, seed: int) -> tuple[float, float]:
    """(mean, std) over `splits` of exp(E KL(p(y|x) || p(y))) (torch-fidelity; samples shuffled with `seed`)."""
    from torch_fidelity.metric_isc import isc_features_to_metric

    out = isc_features_to_metric(logits.double(), splits=splits, shuffle=True, rng_seed=seed)
    return out["inception_score_mean"], out["inception_score_std"]


def _need_fidelity() -> None:
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        raise GantrainError("fid/kid/is need torch-fidelity: pip install 'gantrain[metrics]'") from None


class FID(_FeatureMetric):
    """Fréchet distance between Gaussians fitted to real (`eval.split`) and generated pool features."""

    def __init__(self, setup: EvalSetup) -> None:
        _need_fidelity()
        super().__init__(setup)

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        if self.translated:
            return {f"fid_{d}{self.suffix}": fid_from_features(*self.direction_pair(ctx, d)) for d in self.directions(ctx)}
        return {f"fid{self.suffix}": fid_from_features(self.real["pool"], self.fake_features(ctx)["pool"])}


class KID(_FeatureMetric):
    """Kernel distance, mean and std over `eval.kid_subsets` subsets of `eval.kid_subset_size` (unbiased at small N)."""

    def __init__(self, setup: EvalSetup) -> None:
        super().__init__(setup)
        self.protocol.update(kid_subsets=setup.cfg.eval.kid_subsets, kernel="poly degree 3, gamma 1/d, coef 1")

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        e = ctx.cfg.eval
        if self.translated:
            out = {}
            for d in self.directions(ctx):
                mean, std, size = kid_from_features(*self.direction_pair(ctx, d), e.kid_subsets, e.kid_subset_size, e.seed)
                self.protocol[d]["kid_subset_size"] = size
                out.update({f"kid_{d}{self.suffix}": mean, f"kid_{d}_std{self.suffix}": std})
            return out
        mean, std, size = kid_from_features(self.real["pool"], self.fake_features(ctx)["pool"], e.kid_subsets, e.kid_subset_size, e.seed)
        self.protocol["kid_subset_size"] = size
        return {f"kid_mean{self.suffix}": mean, f"kid_std{self.suffix}": std}


class InceptionScore(_FeatureMetric):
    """IS, mean and std over `eval.is_splits` splits of the generated images (no real images involved)."""

    needs_reference = False

    def __init__(self, setup: EvalSetup) -> None:
        _need_fidelity()
        e = setup.cfg.eval
        if not 1 <= e.is_splits <= e.num_samples:
            raise GantrainError(f"eval.is_splits={e.is_splits} needs 1 to eval.num_samples ({e.num_samples}) splits; lower eval.is_splits")
        super().__init__(setup)
        self.protocol.update(is_splits=e.is_splits)

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        e = ctx.cfg.eval
        if self.translated:  # per direction, on the translated test split (mmagic reports IS of translations too)
            out = {}
            for d in self.directions(ctx):
                logits = ctx.evaluator.translated_features(ctx, self.backbone, d)["logits"]
                if len(logits) < e.is_splits:
                    raise GantrainError(f"eval.is_splits={e.is_splits} exceeds the {len(logits)} translated {d} test images; lower eval.is_splits")
                mean, std = inception_score(logits, e.is_splits, e.seed)
                self.protocol[d] = {"source": f"{e.split}{d[0]}", "num_fake": int(len(logits))}
                out.update({f"is_{d}{self.suffix}": mean, f"is_{d}_std{self.suffix}": std})
            return out
        mean, std = inception_score(self.fake_features(ctx)["logits"], e.is_splits, e.seed)
        return {f"is_mean{self.suffix}": mean, f"is_std{self.suffix}": std}


class ClassifierMetrics:
    """Class balance of the samples and the Fréchet distance in the dataset classifier's feature space.

    Reported: `cls_fd` (generated vs real `eval.split`), `cls_fd_ref` (real train vs real `eval.split`: the
    floor to compare against), `cls_fd_ratio`, `classes_present`, `max_class_share`,
    `classifier_test_accuracy`, and `cond_accuracy` (share classified as the requested label) for
    conditional families.
    """

    def __init__(self, setup: EvalSetup) -> None:
        self.backbone = setup.backbone("classifier")
        self.num_classes = setup.info.num_classes
        self.real, ref_key = setup.reference("classifier")
        train, _ = setup.reference("classifier", "train")
        self.fd_ref = frechet_distance_features(train["pool"], self.real["pool"])
        self.accuracy = self.backbone.protocol["classifier"]["test_accuracy"]
        self.protocol = {**self.backbone.protocol, "reference_split": ref_key["split"], "num_real": ref_key["n"],
                         "floor": "cls_fd_ref = real train split vs reference split"}

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        feats = ctx.evaluator.fake_features(ctx, self.backbone)
        pred = feats["logits"].argmax(1)
        share = torch.bincount(pred, minlength=self.num_classes).double() / len(pred)
        fd = frechet_distance_features(feats["pool"], self.real["pool"])
        out = {
            "cls_fd": fd,
            "cls_fd_ref": self.fd_ref,
            "cls_fd_ratio": fd / max(self.fd_ref, 1e-12),
            "classes_present": int((share > 0).sum()),
            "max_class_share": float(share.max()),
            "classifier_test_accuracy": self.accuracy,
        }
        if ctx.labels is not None:
            labels = ctx.labels.cpu()
            hit = (pred == labels).double()
            out["cond_accuracy"] = float(hit.mean())
            per_class = [float(hit[labels == c].mean()) for c in range(self.num_classes) if (labels == c).any()]
            out["cond_accuracy_worst_class"] = min(per_class)
        return out


Metric = Callable[..., dict[str, float]]
METRICS: dict[str, type | Metric] = {
    "fid": FID,
    "kid": KID,
    "is": InceptionScore,
    "classifier": ClassifierMetrics,
}


def _register_family_metrics() -> None:
    """Family metrics live beside their families; imported here so `eval.metrics` can name them."""
    from gantrain.metrics.latent import LATENT_METRICS
    from gantrain.metrics.paired import PairedTranslationMetrics
    from gantrain.metrics.text2image import TextToImageMetrics
    from gantrain.metrics.translation import TranslationMetrics

    METRICS.update(LATENT_METRICS)
    METRICS.update(paired=PairedTranslationMetrics, text2image=TextToImageMetrics, translation=TranslationMetrics)


_register_family_metrics()


class Evaluator:
    """Builds the configured metrics once and runs them on one shared generated batch per evaluation."""

    def __init__(self, cfg, data: DataSource, info: DataInfo, device: torch.device) -> None:
        names = list(dict.fromkeys([*cfg.eval.metrics, *cfg.eval.data_metrics]))  # the data's own defaults run too
        unknown = [m for m in names if m not in METRICS]
        if unknown:
            raise GantrainError(f"unknown eval.metrics {unknown}; choose from: {', '.join(sorted(METRICS))}")
        if cfg.eval.backbone not in BACKBONES:
            raise GantrainError(f"unknown eval.backbone {cfg.eval.backbone!r}; choose from: {', '.join(sorted(BACKBONES))}")
        self.cfg, self.data, self.info, self.device = cfg, data, info, device
        self._backbones: dict[str, Backbone] = {}
        self._references: dict[tuple[str, str, str | None], tuple[dict[str, torch.Tensor], dict[str, Any]]] = {}
        self.setup = EvalSetup(cfg, data, info, device, self)
        self.metrics: dict[str, Any] = {}
        for name in names:
            entry = METRICS[name]
            self.metrics[name] = entry(self.setup) if isinstance(entry, type) else entry
        self.protocol: dict[str, Any] = {}

    def backbone(self, name: str) -> Backbone:
        if name not in self._backbones:
            if name not in BACKBONES:
                raise GantrainError(f"unknown backbone {name!r}; choose from: {', '.join(sorted(BACKBONES))}")
            self._backbones[name] = BACKBONES[name](self.cfg, self.data, self.info, self.device)
        return self._backbones[name]

    def reference(self, backbone: str, split: str, domain: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        key = (backbone, split, domain)
        if key not in self._references:
            self._references[key] = reference_features(self.cfg, self.data, self.backbone(backbone), split, domain)
        return self._references[key]

    @torch.no_grad()
    def generate(self, model, nets, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`n` images from `model.fixed_inputs` drawn with `eval.seed`: the same inputs at every evaluation."""
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

    def fake_features(self, ctx: EvalContext, backbone: Backbone) -> dict[str, torch.Tensor]:
        """Features of `ctx.fake`, computed once per backbone per evaluation (FID and KID share them)."""
        if backbone.name not in ctx._features:
            ctx._features[backbone.name] = backbone.features(ctx.fake)
        return ctx._features[backbone.name]

    @torch.no_grad()
    def translated_features(self, ctx: EvalContext, backbone: Backbone, direction: str) -> dict[str, torch.Tensor]:
        """Features of the whole `eval.split` of the source domain translated, once per evaluation (FID, KID, IS share them)."""
        key = f"{backbone.name}:{direction}"
        if key not in ctx._features:
            source = self.data.split(self.cfg.eval.split).domain(direction[0])
            fakes = []
            for idx in torch.arange(len(source)).split(self.cfg.eval.batch_size):
                x = source.batch(idx)["image"].to(self.device)
                fakes.append(ctx.model.translate(x, direction, ctx.nets).float().cpu())
            ctx._features[key] = backbone.features(torch.cat(fakes))
        return ctx._features[key]

    def __call__(self, model, nets, step: int) -> dict[str, float]:
        start = time.perf_counter()
        ctx = EvalContext(self.cfg, self.data, self.info, self.device, self, model=model, nets=nets, step=step)
        results: dict[str, float] = {}
        for name, metric in self.metrics.items():
            out = metric(ctx)
            results.update({k: float(v) for k, v in out.items()})
            if hasattr(metric, "protocol"):
                ctx.protocol[name] = metric.protocol
        fake = ctx._fake
        e = self.cfg.eval
        self.protocol = {
            "step": step,
            "seed": e.seed,
            "num_fake": 0 if fake is None else int(len(fake[0])),
            "sampling_nets": "ema" if nets is not None else "live",
            "library": _library_versions(),
            "metrics": ctx.protocol,
            "seconds": round(time.perf_counter() - start, 3),
        }
        log.info("step %d eval (%.1f s): %s", step, self.protocol["seconds"], ", ".join(f"{k}={v:.4g}" for k, v in results.items()))
        return results


def _library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"torch": torch.__version__, "numpy": np.__version__}
    for dist in ("torch-fidelity", "scipy", "gantrain"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return out
