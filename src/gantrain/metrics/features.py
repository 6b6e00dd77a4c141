"""`fid`, `kid`, `is` (in the `eval.backbone` feature space) and `classifier` (in the dataset classifier's).

On two-domain data `fid`, `kid` and `is` score translations, per direction the model declares
(`model.directions`): the whole `eval.split` of the source domain translated, against the real images of the
target domain (`eval.translation_reference`: its test split, or train + test), keys `fid_AtoB`, `kid_AtoB`,
`kid_AtoB_std`, ...
"""

from __future__ import annotations

from typing import Any

import torch

from gantrain.errors import GantrainError
from gantrain.metrics.base import EvalContext, EvalSetup, Metric, register
from gantrain.metrics.frechet import frechet_distance_features, kid_from_features

# How translation FID/KID choose the real images of the target domain (eval.translation_reference).
TRANSLATION_PROTOCOLS = {
    "test": "CUT paper (Park et al. 2020): translated test images of the source vs the real test images of the target",
    "train+test": "GAN Compression (Li et al. 2020): translated test images vs the real train + test images of the target",
}


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


class _FeatureMetric(Metric):
    """Shared set-up of FID/KID/IS: the backbone and, where needed, the real features.

    Building the backbone here (at evaluator set-up, before training) is what makes missing Inception weights
    fail in the first second of a run rather than at its end.
    """

    needs_reference = True

    @classmethod
    def check(cls, setup: EvalSetup) -> None:
        if setup.two_domain() and not setup.model.directions:
            raise cls.incompatible(setup, "scores translations on two-domain data, and this model does not translate",
                                   "use a translation family (model=cyclegan, ...) or the family's own metrics")

    def __init__(self, setup: EvalSetup) -> None:
        super().__init__(setup)
        name = setup.cfg.eval.backbone
        self.suffix = "" if name == "inception" else f"_{name}"  # `fid` vs `fid_classifier`
        self.backbone = setup.backbone(name)
        self.protocol.update(self.backbone.protocol)
        self.translated = setup.two_domain()
        self.directions = tuple(setup.model.directions)
        if self.needs_reference and self.translated:  # real features per target domain, on first use
            e = setup.cfg.eval
            if e.translation_reference == "train+test" and e.split == "train":
                raise GantrainError("eval.translation_reference=train+test needs eval.split=test (the train split is already in it)")
            self._real: dict[str, torch.Tensor] = {}
            self.protocol.update(
                protocol=TRANSLATION_PROTOCOLS[e.translation_reference], translation_reference=e.translation_reference,
                source_split=e.split, image_size=setup.info.image_size,
            )
        elif self.needs_reference:
            self.real, ref_key = setup.reference(name)
            self.protocol.update(reference_split=ref_key["split"], num_real=ref_key["n"], reference_cache=ref_key["cache_file"])

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
        fake = ctx.translated_features(self.backbone, direction)["pool"]
        self.protocol[direction] = {"source": f"{e.split}{src}", "num_fake": int(len(fake)), "reference": f"reference_{dst}",
                                    "num_real": int(len(self._real[dst]))}
        return self._real[dst], fake


@register("fid")
class FID(_FeatureMetric):
    """Fréchet distance between Gaussians fitted to real (`eval.split`) and generated pool features."""

    def __init__(self, setup: EvalSetup) -> None:
        _need_fidelity()
        super().__init__(setup)

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        if self.translated:
            return {f"fid_{d}{self.suffix}": fid_from_features(*self.direction_pair(ctx, d)) for d in self.directions}
        return {f"fid{self.suffix}": fid_from_features(self.real["pool"], ctx.fake_features(self.backbone)["pool"])}


@register("kid")
class KID(_FeatureMetric):
    """Kernel distance, mean and std over `eval.kid_subsets` subsets of `eval.kid_subset_size` (unbiased at small N)."""

    def __init__(self, setup: EvalSetup) -> None:
        super().__init__(setup)
        self.protocol.update(kid_subsets=setup.cfg.eval.kid_subsets, kernel="poly degree 3, gamma 1/d, coef 1")

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        e = ctx.cfg.eval
        if self.translated:
            out = {}
            for d in self.directions:
                mean, std, size = kid_from_features(*self.direction_pair(ctx, d), e.kid_subsets, e.kid_subset_size, e.seed)
                self.protocol[d]["kid_subset_size"] = size
                out.update({f"kid_{d}{self.suffix}": mean, f"kid_{d}_std{self.suffix}": std})
            return out
        fake = ctx.fake_features(self.backbone)["pool"]
        mean, std, size = kid_from_features(self.real["pool"], fake, e.kid_subsets, e.kid_subset_size, e.seed)
        self.protocol["kid_subset_size"] = size
        return {f"kid_mean{self.suffix}": mean, f"kid_std{self.suffix}": std}


@register("is")
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
        if not self.translated:
            mean, std = inception_score(ctx.fake_features(self.backbone)["logits"], e.is_splits, e.seed)
            return {f"is_mean{self.suffix}": mean, f"is_std{self.suffix}": std}
        out = {}
        for d in self.directions:  # per direction, on the translated test split (mmagic reports IS of translations too)
            logits = ctx.translated_features(self.backbone, d)["logits"]
            if len(logits) < e.is_splits:
                raise GantrainError(f"eval.is_splits={e.is_splits} exceeds the {len(logits)} translated {d} test images; lower eval.is_splits")
            mean, std = inception_score(logits, e.is_splits, e.seed)
            self.protocol[d] = {"source": f"{e.split}{d[0]}", "num_fake": int(len(logits))}
            out.update({f"is_{d}{self.suffix}": mean, f"is_{d}_std{self.suffix}": std})
        return out


@register("classifier")
class ClassifierMetrics(Metric):
    """Class balance of the samples and the Fréchet distance in the dataset classifier's feature space.

    Reported: `cls_fd` (generated vs real `eval.split`), `cls_fd_ref` (real train vs real `eval.split`: the
    floor to compare against), `cls_fd_ratio`, `classes_present`, `max_class_share`,
    `classifier_test_accuracy`, and `cond_accuracy` (share classified as the requested label) for
    conditional families.
    """

    @classmethod
    def check(cls, setup: EvalSetup) -> None:
        if setup.info.num_classes < 2:
            raise cls.incompatible(setup, "needs a labelled dataset", "use labelled data (data=digits, ...) or eval.metrics=[fid,kid]")

    def __init__(self, setup: EvalSetup) -> None:
        super().__init__(setup)
        self.backbone = setup.backbone("classifier")
        self.num_classes = setup.info.num_classes
        self.real, ref_key = setup.reference("classifier")
        train, _ = setup.reference("classifier", "train")
        self.fd_ref = frechet_distance_features(train["pool"], self.real["pool"])
        self.accuracy = self.backbone.protocol["classifier"]["test_accuracy"]
        self.protocol = {**self.backbone.protocol, "reference_split": ref_key["split"], "num_real": ref_key["n"],
                         "floor": "cls_fd_ref = real train split vs reference split"}

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        feats = ctx.fake_features(self.backbone)
        pred = feats["logits"].argmax(1)
        share = torch.bincount(pred, minlength=self.num_classes).double() / len(pred)
        fd = frechet_distance_features(feats["pool"], self.real["pool"])
        out: dict[str, Any] = {
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
