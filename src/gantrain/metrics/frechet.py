"""Fréchet distance between Gaussians fitted to two feature sets (the arithmetic behind FID)."""

from __future__ import annotations

import torch


def feature_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    f = features.double()
    mu = f.mean(0)
    centred = f - mu
    sigma = centred.T @ centred / max(f.shape[0] - 1, 1)
    return mu, sigma


def _sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2), with the trace term from the symmetric S1^1/2 S2 S1^1/2."""
    root1 = _sqrtm_psd(sigma1.double())
    middle = root1 @ sigma2.double() @ root1
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    diff = mu1.double() - mu2.double()
    return float(diff @ diff + torch.trace(sigma1.double()) + torch.trace(sigma2.double()) - 2 * trace_sqrt)


def frechet_distance_features(a: torch.Tensor, b: torch.Tensor) -> float:
    return frechet_distance(*feature_stats(a), *feature_stats(b))
