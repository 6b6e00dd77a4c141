"""GAN inversion: find z with G(z) close to a given image x.

Three methods, all batched and device-agnostic:
- `optimize`: Adam on z from several random starts (best restart kept per image), minimising
  ||G(z) - x||^2 (+ an optional feature term); z is kept on the prior by clipping or by resampling
  out-of-range coordinates (Lipton & Tripathi's stochastic clipping).
- `encoder`: one forward pass of an encoder E (a BiGAN's E or a `model=latent_encoder` run).
- `hybrid` (iGAN / IDInvert in-domain inversion): start from E(x), then minimise
  ||G(z) - x||^2 (+ the feature term) + lambda_dom ||z - E(G(z))||^2, which keeps z where the encoder's domain is.
`DEFAULTS` holds each method's settings (hybrid: IDInvert's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from gantrain.errors import GantrainError
from gantrain.nets.freeze import frozen

METHODS = ("optimize", "encoder", "hybrid")
KEEP_PRIOR = ("clip", "resample", "none")
NORMAL_BOUND = 3.0  # a normal prior is kept within +-3 std


@dataclass
class InversionSettings:
    steps: int = 100
    lr: float = 0.05
    restarts: int = 4
    lambda_dom: float = 2.0  # hybrid: weight of ||z - E(G(z))||^2 (IDInvert's lambda_dom)
    feature_weight: float = 0.0  # weight of ||F(x) - F(G(z))||^2 when a feature net F is given
    keep_prior: str = "clip"  # clip | resample | none
    features: str = "none"  # which F (nets/features.py): auto | classifier | vgg16 | none


# Each method's defaults, the one place they are set. hybrid: IDInvert's in-domain inversion (idinvert_pytorch
# invert.py and utils/inverter.py): Adam lr 0.01, 100 iterations, lambda_dom 2.0, the feature term on where a
# feature net is available (its weight is then that F's own, nets/features.py). encoder and hybrid take E(x) as it
# is, as IDInvert does (no projection onto the prior): an encoder trained on real images only (objective=idinvert)
# puts half its coordinates outside a uniform prior's [-1, 1], and clipping them quadruples its error on the digits
# (BENCHMARKS.md); the latent regressor's z barely moves either way.
DEFAULTS = {
    "optimize": InversionSettings(),
    "encoder": InversionSettings(keep_prior="none"),
    "hybrid": InversionSettings(lr=0.01, features="auto", keep_prior="none"),
}


@dataclass
class Latent:
    """What inversion needs from a trained model: G, its prior, and an encoder if the run has one."""

    G: nn.Module
    z_dim: int
    z_dist: str
    E: nn.Module | None = None


def sample_prior(n: int, z_dim: int, z_dist: str, gen: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """n draws of the latent prior (`z_dist` normal, or uniform on [-1, 1]), the one prior of every family and of
    inversion. From `gen` they are drawn on the CPU (the same numbers on every device), else from `device`'s stream."""
    shape = (n, z_dim)
    draw = torch.rand if z_dist == "uniform" else torch.randn
    z = draw(shape, generator=gen) if gen is not None else draw(shape, device=device)
    return (z * 2 - 1 if z_dist == "uniform" else z).to(device)


@torch.no_grad()
def project_to_prior(z: torch.Tensor, z_dist: str, mode: str, gen: torch.Generator | None = None) -> torch.Tensor:
    """Clip z to the prior's support (+-1 uniform, +-3 normal) or resample the coordinates outside it."""
    if mode == "none":
        return z
    bound = 1.0 if z_dist == "uniform" else NORMAL_BOUND
    if mode == "clip":
        return z.clamp_(-bound, bound)
    out = z.abs() > bound
    if out.any():
        fresh = sample_prior(z.shape[0], z.shape[1], z_dist, gen or torch.Generator().manual_seed(0), z.device)
        z[out] = fresh[out].clamp(-bound, bound)
    return z


def per_image_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).pow(2).flatten(1).mean(1)


def _descend(latent: Latent, x: torch.Tensor, z: torch.Tensor, s: InversionSettings, gen: torch.Generator,
             features: Callable[[torch.Tensor], torch.Tensor] | None, anchor: bool) -> torch.Tensor:
    """Adam on z (one row per target in x); returns z and the final per-row loss."""
    z = z.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=s.lr)
    target_feats = features(x).detach() if features is not None and s.feature_weight > 0 else None
    for _ in range(s.steps):
        gz = latent.G(z)
        loss = per_image_mse(gz, x)
        if target_feats is not None:
            loss = loss + s.feature_weight * per_image_mse(features(gz), target_feats)
        if anchor:
            loss = loss + s.lambda_dom * (z - latent.E(gz)).pow(2).mean(1)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        project_to_prior(z.data, latent.z_dist, s.keep_prior, gen)
    return z.detach()


def invert(latent: Latent, x: torch.Tensor, method: str, s: InversionSettings, gen: torch.Generator,
           features: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Latents (N, z_dim) for images x (N, C, H, W) in [-1, 1]; G and E must be in eval mode (E then gives its mean)."""
    if method not in METHODS:
        raise GantrainError(f"unknown inversion method {method!r}; choose one of: {', '.join(METHODS)}")
    if s.keep_prior not in KEEP_PRIOR:
        raise GantrainError(f"unknown --keep-prior {s.keep_prior!r}; choose one of: {', '.join(KEEP_PRIOR)}")
    if method != "optimize" and latent.E is None:
        raise GantrainError(
            f"--method {method} needs an encoder: invert a BiGAN or latent_encoder run, or pass --encoder RUN "
            "(train one with `gantrain model=latent_encoder model.generator=RUN`)"
        )
    with frozen(latent.G, latent.E):  # gradients flow to z only
        if method == "encoder":
            with torch.no_grad():
                return project_to_prior(latent.E(x), latent.z_dist, s.keep_prior, gen)
        if method == "hybrid":
            with torch.no_grad():
                z0 = project_to_prior(latent.E(x), latent.z_dist, s.keep_prior, gen)
            return _descend(latent, x, z0, s, gen, features, anchor=True)
        if s.restarts < 1 or s.steps < 0:
            raise GantrainError(f"--restarts must be >= 1 and --steps >= 0, got {s.restarts} and {s.steps}")
        n = x.shape[0]
        xs = x.repeat(s.restarts, 1, 1, 1)
        z0 = sample_prior(n * s.restarts, latent.z_dim, latent.z_dist, gen, x.device)
        z = _descend(latent, xs, z0, s, gen, features, anchor=False)
        with torch.no_grad():
            err = per_image_mse(latent.G(z), xs).view(s.restarts, n)
        best = err.argmin(0)
        return z.view(s.restarts, n, -1)[best, torch.arange(n, device=x.device)]


def psnr(mse: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """PSNR in dB for an MSE measured on images in [0, peak] (capped at 100 dB for exact matches)."""
    return (10 * torch.log10(peak**2 / mse.clamp_min(1e-10))).clamp_max(100.0)


def reconstruction_error(x: torch.Tensor, recon: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (MSE, PSNR), both measured on [0, 1] images (inputs in [-1, 1])."""
    mse = per_image_mse(recon.clamp(-1, 1).add(1).div(2), x.add(1).div(2))
    return mse, psnr(mse)



def latent_of(model, nets: nn.ModuleDict | None = None, encoder_model=None) -> Latent:
    """The `Latent` of a trained model (from `load_trained`): its G and E (EMA copies where `nets` has them), its prior and its E
    (its own, as for BiGAN and latent_encoder runs, or that of `encoder_model`)."""
    inputs = model.fixed_inputs(1, torch.Generator().manual_seed(0))
    if set(inputs) != {"z"}:
        raise GantrainError(
            f"model={model.cfg.name} has a conditional generator (inputs {sorted(inputs)}); inversion needs an unconditional one"
        )
    pick = {name: (nets[name] if nets is not None and name in nets else model.nets[name]) for name in ("G", "E") if name in model.nets}
    if "G" not in pick:
        raise GantrainError(f"model={model.cfg.name} has no single generator G to invert")
    z_dim, z_dist = model.latent_prior
    E = pick.get("E")
    if encoder_model is not None:
        other = latent_of(encoder_model)
        if other.E is None:
            raise GantrainError(f"the --encoder run (model={encoder_model.cfg.name}) has no encoder E")
        if other.z_dim != z_dim:
            raise GantrainError(f"the --encoder run has a {other.z_dim}-d latent but the generator's is {z_dim}-d")
        E = other.E
    return Latent(pick["G"].eval(), z_dim, z_dist, None if E is None else E.eval())
