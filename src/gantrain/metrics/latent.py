"""Metrics of latent-space families (registered with `metrics.base.register`).

- `latent_probe` (BiGAN, latent_encoder): how much class information E(x) keeps. 1-nearest-neighbour and
  logistic-regression accuracy on the eval split with E(x) features fitted on the train split, beside the
  same classifiers on raw pixels (the baseline E(x) should approach or beat).
- `reconstruction` (any run with G and E): inversion quality of the encoder. `recon_mse`/`recon_psnr` of
  G(E(x)) on real eval images; `recon_mse_random`, the error against the reconstruction of another random
  image (BiGAN's EGr_b baseline), and their ratio `recon_ratio` (< 1: reconstructions are image-specific);
  on G's own samples, `sample_recon_mse` = ||G(z) - G(E(G(z)))||^2 and `latent_mse` = ||z - E(G(z))||^2.
- `pair_agreement` (CoGAN): do the two generators' images for one z correspond? On `eval.num_samples` pairs,
  apply the dataset's known A -> B transform (negative, edges) to G_A(z) and compare with G_B(z) after
  binarising both at 0.5: `pair_agreement` is the share of equal pixels (the CoGAN paper's pixel agreement
  ratio), `pair_l1` the mean absolute difference. Datasets without a known transform are skipped (logged).
MSE/PSNR are on images in [0, 1].

These metrics drive the model themselves: `metric(ctx)` calls `evaluate(ctx.model, ctx.nets)`.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from gantrain.data.base import DataSource, InMemoryImages
from gantrain.errors import GantrainError
from gantrain.inversion import Latent, latent_of, reconstruction_error, sample_prior
from gantrain.metrics.base import EvalContext, EvalSetup, Metric, register

log = logging.getLogger(__name__)


def _split_images(data: DataSource, name: str, metric: str) -> InMemoryImages:
    split = data.split(name)
    if not isinstance(split, InMemoryImages):
        raise GantrainError(f"the {metric} metric needs an in-memory image dataset (e.g. data=digits), not data={data.cfg.name}")
    return split


def _all(split: InMemoryImages) -> dict[str, torch.Tensor]:
    return split.batch(torch.arange(len(split)))


@torch.no_grad()
def encode(latent: Latent, x: torch.Tensor, device: torch.device, batch: int = 500) -> torch.Tensor:
    return torch.cat([latent.E(chunk.to(device)).float().cpu() for chunk in x.split(batch)])


@torch.no_grad()
def decode(latent: Latent, z: torch.Tensor, device: torch.device, batch: int = 500) -> torch.Tensor:
    return torch.cat([latent.G(chunk.to(device)).float().cpu() for chunk in z.split(batch)])


def probe_accuracies(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> tuple[float, float]:
    """(1-NN accuracy, logistic-regression accuracy) of features fitted on train, scored on test."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler

    knn = KNeighborsClassifier(n_neighbors=1).fit(train_x, train_y)
    scaler = StandardScaler().fit(train_x)
    logreg = LogisticRegression(max_iter=2000).fit(scaler.transform(train_x), train_y)
    return float(knn.score(test_x, test_y)), float(logreg.score(scaler.transform(test_x), test_y))


class _ModelMetric(Metric):
    """A metric of G and its encoder E: `measure()` runs with `self.latent` set to the nets being scored."""

    @classmethod
    def check(cls, setup: EvalSetup) -> None:
        if "E" not in getattr(setup.model, "nets", {}) or getattr(setup.model, "conditioning", None):
            raise cls.incompatible(setup, "needs an unconditional model with an encoder E", "train model=bigan or latent_encoder")

    def __init__(self, setup: EvalSetup) -> None:
        super().__init__(setup)
        self.latent: Latent | None = None

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        return self.evaluate(ctx.model, ctx.nets)

    @torch.no_grad()
    def evaluate(self, model, nets) -> dict[str, float]:
        self.latent = latent_of(model, nets)
        return self.measure()

    def measure(self) -> dict[str, float]:
        raise NotImplementedError


@register("latent_probe")
class LatentProbe(_ModelMetric):
    def __init__(self, setup: EvalSetup) -> None:
        super().__init__(setup)
        self._pixels: dict[str, float] | None = None

    def measure(self) -> dict[str, float]:
        train, test = _all(_split_images(self.data, "train", self.name)), _all(_split_images(self.data, self.cfg.eval.split, self.name))
        if "label" not in train:
            log.warning("latent_probe skipped: data=%s has no labels", self.info.name)
            return {}
        ytr, yte = train["label"].cpu().numpy(), test["label"].cpu().numpy()
        if self._pixels is None:
            knn, lr = probe_accuracies(train["image"].flatten(1).cpu().numpy(), ytr, test["image"].flatten(1).cpu().numpy(), yte)
            self._pixels = {"pixel_knn_acc": knn, "pixel_logreg_acc": lr}
        ftr = encode(self.latent, train["image"], self.device).numpy()
        fte = encode(self.latent, test["image"], self.device).numpy()
        knn, lr = probe_accuracies(ftr, ytr, fte, yte)
        return {"probe_knn_acc": knn, "probe_logreg_acc": lr, **self._pixels}


@register("reconstruction")
class Reconstruction(_ModelMetric):

    def measure(self) -> dict[str, float]:
        x = _all(_split_images(self.data, self.cfg.eval.split, self.name))["image"].cpu()
        recon = decode(self.latent, encode(self.latent, x, self.device), self.device)
        gen = torch.Generator().manual_seed(self.cfg.eval.seed)
        other = torch.randperm(len(x), generator=gen)
        mse, psnr = reconstruction_error(x, recon)
        mse_random, _ = reconstruction_error(x, recon[other])
        z = sample_prior(min(len(x), self.cfg.eval.num_samples), self.latent.z_dim, self.latent.z_dist, gen, torch.device("cpu"))
        gz = decode(self.latent, z, self.device)
        z_hat = encode(self.latent, gz, self.device)
        sample_mse, _ = reconstruction_error(gz, decode(self.latent, z_hat, self.device))
        return {
            "recon_mse": float(mse.mean()),
            "recon_psnr": float(psnr.mean()),
            "recon_mse_random": float(mse_random.mean()),
            "recon_ratio": float(mse.mean() / mse_random.mean().clamp_min(1e-12)),
            "sample_recon_mse": float(sample_mse.mean()),
            "latent_mse": float((z_hat - z).pow(2).mean()),
        }


@register("pair_agreement")
class PairAgreement(Metric):
    @classmethod
    def check(cls, setup: EvalSetup) -> None:
        if not hasattr(setup.model, "sample_outputs"):
            raise cls.incompatible(setup, "needs a two-domain generator", "train model=cogan or use other metrics")

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        return self.evaluate(ctx.model, ctx.nets)

    @torch.no_grad()
    def evaluate(self, model, nets) -> dict[str, float]:
        transform = getattr(type(self.data), "transform", None)
        if transform is None:
            log.warning("pair_agreement skipped: data=%s has no known A -> B transform", self.info.name)
            return {}
        gen = torch.Generator().manual_seed(self.cfg.eval.seed)
        agree, l1, done = [], [], 0
        while done < self.cfg.eval.num_samples:
            k = min(self.cfg.eval.batch_size, self.cfg.eval.num_samples - done)
            pair = model.sample_outputs(model.fixed_inputs(k, gen), nets)
            a, b = (pair[d].float().cpu().clamp(-1, 1).add(1).div(2) for d in ("A", "B"))
            expected = transform(a)
            agree.append(((expected > 0.5) == (b > 0.5)).float().flatten(1).mean(1))
            l1.append((expected - b).abs().flatten(1).mean(1))
            done += k
        return {"pair_agreement": float(torch.cat(agree).mean()), "pair_l1": float(torch.cat(l1).mean())}
