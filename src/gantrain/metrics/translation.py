"""Metrics for unpaired translation, run on the whole test split of both domains (no silent cap).

- `cycle_L1_A`, `cycle_L1_B`: mean |G_B(G_A(a)) - a| (and the B cycle) on [-1, 1] images.
- `paired_L1_AtoB`, `paired_L1_BtoA`: mean distance to the true translation, where the test split is paired
  (the embedded digit sets: the training data never is).
- With labelled digit domains: `class_acc_AtoB` (translated test digits classified back to their own class:
  with the project's digits classifier on the inverse transform where one exists, e.g. 1 - x for
  digits2negative, else with a classifier trained on domain B), `class_acc_BtoA` (digits classifier on the
  translations), and per direction the Fréchet distance and KID (the one KID of metrics/frechet.py, with
  `eval.kid_subsets`/`eval.kid_subset_size`) in that classifier's feature space against the real test images of
  the target domain (`cls_fd_*`, `cls_kid_*`).

Inception FID/KID per direction are the `fid` and `kid` metrics (metrics/features.py), which score
translations on two-domain data.

One-directional models (CUT, FastCUT: `model.directions == ("AtoB",)`) get only the `*_AtoB` keys (no cycle).
"""

from __future__ import annotations

from typing import Any

import torch

from gantrain.metrics.base import EvalContext, EvalSetup, Metric, register
from gantrain.nets.classifier import classify, load_or_train
from gantrain.metrics.frechet import frechet_distance_features, kid_from_features


@register("translation")
class TranslationMetrics(Metric):
    """Cycle and paired L1, and on labelled digit domains class accuracy and classifier-space FD/KID, per direction."""

    @classmethod
    def check(cls, setup: EvalSetup) -> None:
        if not setup.two_domain():
            raise cls.incompatible(setup, "needs two-domain data", "use data=digits2negative, unpaired_folder, ... or other metrics")
        directions = tuple(setup.model.directions)
        if "AtoB" not in directions:
            raise cls.incompatible(setup, f"scores A -> B translations and the model translates {', '.join(directions) or 'nothing'}",
                                   "use eval.metrics=[fid,kid] or eval.metrics=[paired]")

    def __init__(self, setup: EvalSetup) -> None:
        super().__init__(setup)
        self._classifiers: dict[str, Any] = {}

    @torch.no_grad()
    def _translate(self, model, nets, x: torch.Tensor, direction: str) -> torch.Tensor:
        bs = self.cfg.eval.batch_size
        return torch.cat([model.translate(c.to(model.rt.device), direction, nets).float().cpu() for c in x.split(bs)])

    def _classifier(self, side: str):
        if side not in self._classifiers:
            train = self.data.labelled_domain(side, "train")
            test = self.data.labelled_domain(side, "test")
            name = "digits" if side == "A" else f"{self.info.name}_B"  # A is the digits domain: the project's classifier
            self._classifiers[side] = load_or_train(
                name, train, test, self.info.channels, self.info.num_classes, self.device, self.cfg.eval.classifier_cache
            )
        return self._classifiers[side]

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        return self.evaluate(ctx.model, ctx.nets)

    def _kid(self, fake: torch.Tensor, real: torch.Tensor) -> float:
        e = self.cfg.eval
        return kid_from_features(real, fake, e.kid_subsets, e.kid_subset_size, e.seed)[0]

    def evaluate(self, model, nets) -> dict[str, float]:
        directions = tuple(model.directions)
        split = self.data.split(self.cfg.eval.split)
        dom_a, dom_b = split.domain("A"), split.domain("B")
        real_a = dom_a.batch(torch.arange(len(dom_a)))["image"]
        real_b = dom_b.batch(torch.arange(len(dom_b)))["image"]
        both = "BtoA" in directions
        fake_b = self._translate(model, nets, real_a, "AtoB")
        out: dict[str, float] = {"n_test_A": len(real_a), "n_test_B": len(real_b)}
        if both:
            fake_a = self._translate(model, nets, real_b, "BtoA")
            rec_a = self._translate(model, nets, fake_b, "BtoA")
            rec_b = self._translate(model, nets, fake_a, "AtoB")
            out["cycle_L1_A"] = float((rec_a - real_a).abs().mean())
            out["cycle_L1_B"] = float((rec_b - real_b).abs().mean())
        if self.info.paired_test and real_a.shape == real_b.shape:
            out["paired_L1_AtoB"] = float((fake_b - real_b).abs().mean())
            if both:
                out["paired_L1_BtoA"] = float((fake_a - real_a).abs().mean())
        if hasattr(self.data, "labelled_domain") and dom_a.labels is not None and dom_b.labels is not None:
            out.update(self._class_scores({"A": real_a, "B": real_b}, {"B": fake_b, **({"A": fake_a} if both else {})},
                                          {"A": dom_a.labels.cpu(), "B": dom_b.labels.cpu()}))
        return out

    def _class_scores(self, real: dict[str, torch.Tensor], fake: dict[str, torch.Tensor],
                      labels: dict[str, torch.Tensor]) -> dict[str, float]:
        """Class accuracy and classifier-space FD/KID per direction; `fake[side]` is the translation into `side`."""
        out: dict[str, float] = {}
        net_a, proto_a = self._classifier("A")
        inverse = getattr(self.data, "inverse_b", None)
        if inverse is not None:  # back to digits in [0, 1] space, then the digits classifier
            judged = inverse(fake["B"].add(1).div(2)).mul(2).sub(1)
            net_ab, target_net = net_a, None
        else:
            judged = fake["B"]
            net_ab, _ = self._classifier("B")
            target_net = net_ab
        _, logits = classify(net_ab, judged, self.device)
        out["class_acc_AtoB"] = float((logits.argmax(1) == labels["A"]).double().mean())
        if "A" in fake:
            feats_a_fake, logits_a = classify(net_a, fake["A"], self.device)
            out["class_acc_BtoA"] = float((logits_a.argmax(1) == labels["B"]).double().mean())
            feats_a_real, _ = classify(net_a, real["A"], self.device)
            out["cls_fd_BtoA"] = frechet_distance_features(feats_a_fake, feats_a_real)
            out["cls_kid_BtoA"] = self._kid(feats_a_fake, feats_a_real)
        net_b = target_net if target_net is not None else self._classifier("B")[0]
        feats_b_fake, _ = classify(net_b, fake["B"], self.device)
        feats_b_real, _ = classify(net_b, real["B"], self.device)
        out["cls_fd_AtoB"] = frechet_distance_features(feats_b_fake, feats_b_real)
        out["cls_kid_AtoB"] = self._kid(feats_b_fake, feats_b_real)
        out["classifier_test_accuracy"] = float(proto_a["test_accuracy"])
        return out
