"""Distances between two feature sets: the Fréchet distance of fitted Gaussians (FID) and the kernel distance (KID).

Every KID gantrain reports (Inception, classifier features, per translation direction) comes from
`kid_from_features`, so the numbers share one definition.
"""

from __future__ import annotations

import numpy as np
import torch

from gantrain.errors import GantrainError


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


def kid_from_features(real: torch.Tensor, fake: torch.Tensor, subsets: int, subset_size: int, seed: int) -> tuple[float, float, int]:
    """(mean, std, subset size) of the unbiased MMD^2 with the cubic kernel (x.y/d + 1)^3 (Binkowski et al. 2018)
    over `subsets` random subsets of equal size from each side: torch-fidelity's definition and subset draws,
    without needing it. The size is clipped to the smaller set (then every subset is the whole set)."""
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise GantrainError(f"KID needs at least 2 images on each side, got {len(real)} real and {len(fake)} generated")
    a, b = real.double().cpu().numpy(), fake.double().cpu().numpy()
    d = a.shape[1]
    rng = np.random.RandomState(seed)
    mmds = np.empty(subsets)
    for i in range(subsets):
        x = a[rng.choice(len(a), size, replace=False)]
        y = b[rng.choice(len(b), size, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (size * (size - 1))
        mmds[i] = within - 2 * kxy.sum() / (size * size)
    return float(mmds.mean()), float(mmds.std()), size
