"""`eval.metrics=[paired]`: paired translation (pix2pix) scored against the true targets of the whole test split.

- `test_L1`: mean |G(x) - y| on [-1, 1] images (the training loss's scale).
- `test_PSNR`: mean over images of 10 log10(1 / MSE) on [0, 1] images, in dB (capped at 100), by the one PSNR
  of gantrain/inversion.py that the inversion metrics use too.
- With a labelled dataset that names a classifier per side (edges2digits: B is the digits): `class_acc`, the
  share of translations the project's classifier for the target side (nets/classifier.py, trained on real
  target images and cached) reads as the source's class; `class_acc_real` is that classifier's accuracy on
  the real targets (the ceiling); `cls_fd` the Fréchet distance of translations vs real targets in its features.
"""

from __future__ import annotations

import torch

from gantrain.inversion import reconstruction_error
from gantrain.metrics.base import EvalContext, EvalSetup, Metric, register
from gantrain.nets.classifier import classify, load_or_train
from gantrain.metrics.frechet import frechet_distance_features


@register("paired")
class PairedTranslationMetrics(Metric):
    """L1 and PSNR to the true targets, and class accuracy where the data names classifiers."""

    @classmethod
    def check(cls, setup: EvalSetup) -> None:
        if not setup.info.paired:
            raise cls.incompatible(setup, "needs paired data (true targets)",
                                   "use paired data (data=edges2digits, aligned_folder, ...) or eval.metrics=[translation]")
        if len(setup.model.directions) != 1:
            raise cls.incompatible(setup, "scores a model trained on one direction (model=pix2pix)",
                                   "use eval.metrics=[translation] or [fid,kid]")

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        """Translates the real test inputs itself: the evaluator's unconditional samples are not used."""
        return self.evaluate(ctx.model, ctx.nets)

    @torch.no_grad()
    def evaluate(self, model, nets) -> dict[str, float]:
        split = self.data.split(self.cfg.eval.split)
        direction = model.directions[0]
        src, dst = direction[0], direction[-1]
        source, target = split.domain(src), split.domain(dst)
        x = source.batch(torch.arange(len(source)))["image"]
        y = target.batch(torch.arange(len(target)))["image"]
        fake = torch.cat([model.translate(c, direction, nets).float().cpu() for c in x.split(self.cfg.eval.batch_size)])
        out: dict[str, float] = {
            "test_L1": float((fake - y).abs().mean()),
            "test_PSNR": float(reconstruction_error(y, fake)[1].mean()),
            "n_test": len(y),
        }
        names = getattr(self.data, "classifier_names", None)
        if names and source.labels is not None and hasattr(self.data, "labelled_domain"):
            train_dst = self.data.labelled_domain(dst, "train")
            test_dst = self.data.labelled_domain(dst, "test")
            net, protocol = load_or_train(names[dst], train_dst, test_dst, self.info.channels, self.info.num_classes,
                                          self.device, self.cfg.eval.classifier_cache)
            feats_fake, logits = classify(net, fake, self.device)
            feats_real, _ = classify(net, y, self.device)
            out["class_acc"] = float((logits.argmax(1) == source.labels.cpu()).double().mean())
            out["class_acc_real"] = float(protocol["test_accuracy"])
            out["cls_fd"] = frechet_distance_features(feats_fake, feats_real)
        return out
