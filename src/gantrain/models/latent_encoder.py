"""`model=latent_encoder model.generator=RUN`: an encoder E for a frozen, already trained generator.

Two objectives (`objective`):
- `regressor`, the latent regressor of GAN inversion: min_E E_z ||z - E(G(z))||^2 on fresh pairs (z, G(z)) each
  batch. With `image_weight > 0` it also trains on the real images of `data` through G (+ image_weight *
  ||x - G(E(x))||^2), which helps it transfer from G's samples to real images.
- `idinvert`, In-Domain GAN Inversion's domain-guided encoder (Zhu et al. 2020, genforce/idinvert
  training/loss_encoder.py), on real images only: ||x - G(E(x))||^2 + feature_weight ||F(x) - F(G(E(x)))||^2
  + adv_weight softplus(-D(G(E(x)))), then D: softplus(D(G(E(x)))) + softplus(-D(x)) + r1_gamma / 2 R1(x).
  F is `features` (nets/features.py); the term is off when no feature net is available, and the log says which.

G comes from RUN (a run directory or checkpoint of any family with an unconditional generator G: gan,
dcgan, bigan); its EMA weights are used when the run kept them. The generator's model config is copied
into `generator_model` so this run's checkpoints are self-contained (RUN is not needed to resume, sample
or invert). `gantrain-invert THIS_RUN --method encoder|hybrid` then uses G and E from this run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
from omegaconf import MISSING, OmegaConf

from gantrain.data.base import DataInfo, DataSource
from gantrain.errors import GantrainError
from gantrain.losses import make_loss, r1_penalty
from gantrain.models.base import GANModel
from gantrain.nets.dcgan import DCGANDiscriminator
from gantrain.nets.encoder import ENCODER_ARCHS, build_encoder
from gantrain.nets.features import FEATURES, build_features
from gantrain.nets.init import init_weights
from gantrain.runs import build_model, load_trained

log = logging.getLogger(__name__)
OBJECTIVES = ("regressor", "idinvert")


class LatentEncoder(GANModel):
    generator_names = ("E",)

    @dataclass
    class Config:
        name: str = MISSING
        generator: Optional[str] = MISSING  # run directory or checkpoint of the trained generator (required)
        objective: str = MISSING  # regressor | idinvert
        arch: str = MISSING  # dcgan (conv) | mlp
        ndf: int = MISSING
        hidden: list[int] = MISSING  # arch=mlp
        norm: str = MISSING
        latent_weight: float = MISSING  # ||z - E(G(z))||^2 on G's samples
        image_weight: float = MISSING  # ||x - G(E(x))||^2 on real images (in-domain variant)
        features: str = MISSING  # idinvert: F of the feature term (auto | classifier | vgg16 | none)
        feature_weight: Optional[float] = MISSING  # idinvert: null = F's own default (nets/features.py)
        feature_cache: Optional[str] = MISSING  # folder of the cached classifier (null: ~/.cache/gantrain/classifiers)
        adv_weight: float = MISSING  # idinvert: weight of E's adversarial term
        r1_gamma: float = MISSING  # idinvert: D's R1 penalty, gamma / 2 * E||grad_x D(x)||^2
        d_ndf: int = MISSING  # idinvert: width of D (a DCGAN discriminator)
        d_norm: str = MISSING
        use_ema: bool = MISSING  # take the generator run's EMA weights when it has them
        init_type: str = MISSING
        init_gain: float = MISSING
        generator_model: Optional[Dict[str, Any]] = MISSING  # filled in from RUN at the start of training

    def __init__(self, cfg, info: DataInfo) -> None:
        super().__init__(cfg, info)
        if cfg.arch not in ENCODER_ARCHS:
            raise GantrainError(f"unknown model.arch {cfg.arch!r}; choose one of: {', '.join(ENCODER_ARCHS)}")
        if cfg.objective not in OBJECTIVES:
            raise GantrainError(f"unknown model.objective {cfg.objective!r}; choose one of: {', '.join(OBJECTIVES)}")
        if cfg.features not in FEATURES:
            raise GantrainError(f"unknown model.features {cfg.features!r}; choose one of: {', '.join(FEATURES)}")
        if cfg.objective == "regressor" and cfg.latent_weight <= 0 and cfg.image_weight <= 0:
            raise GantrainError("model.latent_weight and model.image_weight are both 0: the encoder would learn nothing")
        self.nets["G"], self.gen_cfg = self._generator(cfg, info)
        self.nets["G"].requires_grad_(False)
        self.nets["E"] = build_encoder(cfg.arch, info.channels, info.image_size, self.latent_prior[0], ndf=cfg.ndf,
                                       hidden=list(cfg.hidden), norm=cfg.norm)
        init_weights(self.nets["E"], cfg.init_type, cfg.init_gain)
        self.features, self.feature_weight = None, 0.0  # idinvert's F, set in `prepare` (it needs the data)
        if cfg.objective == "idinvert":
            self.nets["D"] = DCGANDiscriminator(info.channels, info.image_size, cfg.d_ndf, cfg.d_norm)
            init_weights(self.nets["D"], cfg.init_type, cfg.init_gain)
            self.adversarial = make_loss("bce")  # the logistic loss: softplus(-D(real)), softplus(D(fake))

    @staticmethod
    def _generator(cfg, info: DataInfo) -> tuple[nn.Module, Any]:
        """(G, its model config): architecture from the stored config, weights from RUN on a fresh start."""
        if cfg.generator_model is not None:
            model = build_model(OmegaConf.create({"model": cfg.generator_model}), info)
            return model.nets["G"], model.cfg
        if not cfg.generator:
            raise GantrainError("model=latent_encoder needs model.generator=RUN (a run directory or checkpoint with a trained G)")
        # on the CPU: attaching this run's runtime moves G to its device, and a CPU run must not initialise CUDA
        model, ema, ckpt, _ = load_trained(cfg.generator, "cpu", prefer_ema=cfg.use_ema)
        gen_info = model.info
        if (gen_info.channels, gen_info.image_size) != (info.channels, info.image_size):
            raise GantrainError(
                f"the generator makes {gen_info.channels}x{gen_info.image_size}px images but data={info.name} gives "
                f"{info.channels}x{info.image_size}px; pick matching data (e.g. data={gen_info.name} data.image_size={gen_info.image_size})"
            )
        if "G" not in model.nets or "z_dim" not in model.cfg:
            raise GantrainError(f"model={model.cfg.name} has no single unconditional generator G to encode for")
        if set(model.fixed_inputs(1, torch.Generator().manual_seed(0))) != {"z"}:
            raise GantrainError(f"model={model.cfg.name} has a conditional generator; latent_encoder needs an unconditional one")
        cfg.generator_model = OmegaConf.to_container(model.cfg, resolve=True)
        return (ema if ema is not None and "G" in ckpt["ema"] else model.nets)["G"], model.cfg

    @property
    def latent_prior(self) -> tuple[int, str]:
        """The frozen generator's prior (this family's own config has no z)."""
        return int(self.gen_cfg.z_dim), str(self.gen_cfg.get("z_dist", "normal"))

    def attach(self, runtime) -> None:
        super().attach(runtime)
        self.nets["G"].eval()  # frozen: BN uses its running statistics, as at sampling time

    def prepare(self, data: DataSource, run_dir: Path | None = None) -> None:
        """idinvert: build F (the digits classifier is trained and cached on first use) and say which one is used."""
        if self.cfg.objective != "idinvert":
            return
        feats = build_features(self.cfg.features, data, self.rt.device, self.cfg.feature_cache)
        self.features, self.feature_weight = feats.fn, feats.weight(self.cfg.feature_weight)
        log.info("latent_encoder idinvert: %s%s", feats.description,
                 f", weight {self.feature_weight:g}" if self.features is not None else "")

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {name: list(self.nets[name].parameters()) for name in ("E", "D") if name in self.nets}

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        self.nets["G"].eval()  # the trainer puts every net back in train mode after sampling
        if self.cfg.objective == "idinvert":
            return self._idinvert_step(batch["image"])
        return self._regressor_step(batch["image"])

    def _idinvert_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """E's step then D's, as IDInvert's training loop runs them; D scores this step's reconstructions."""
        G, E, D, rt = self.nets["G"], self.nets["E"], self.nets["D"], self.rt
        out: dict[str, torch.Tensor] = {}
        with self.frozen(D), rt.autocast():
            recon = G(E(x))
            pixel = (recon.float() - x).pow(2).mean()
            adv = self.adversarial.generator(D(recon))
            loss = pixel + self.cfg.adv_weight * adv
            if self.features is not None and self.feature_weight > 0:
                feat = (self.features(recon).float() - self.features(x).float()).pow(2).mean()
                loss = loss + self.feature_weight * feat
                out["feature_mse"] = feat.detach()
        self.update("E", loss)
        out.update(E=loss.detach(), image_mse=pixel.detach(), E_adv=adv.detach())
        with rt.autocast():
            fake = self.adversarial.discriminator(D(recon.detach()), real=False)
            with rt.penalty_precision():
                real_logits, r1 = r1_penalty(D, x)
            real = self.adversarial.discriminator(real_logits, real=True)
            d_loss = real + fake + self.cfg.r1_gamma / 2 * r1
        self.update("D", d_loss)
        out.update(D=d_loss.detach(), D_real=real.detach(), D_fake=fake.detach(), r1=r1.detach())
        return out

    def _regressor_step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        G, E, rt = self.nets["G"], self.nets["E"], self.rt
        z = self.sample_z(x.shape[0])
        out: dict[str, torch.Tensor] = {}
        with rt.autocast():
            loss = torch.zeros((), device=x.device)
            if self.cfg.latent_weight > 0:
                with torch.no_grad():
                    gz = G(z)
                latent = (E(gz).float() - z).pow(2).mean()
                loss = loss + self.cfg.latent_weight * latent
                out["latent_mse"] = latent.detach()
            if self.cfg.image_weight > 0:
                image = (G(E(x)).float() - x).pow(2).mean()
                loss = loss + self.cfg.image_weight * image
                out["image_mse"] = image.detach()
        self.update("E", loss)
        out["E"] = loss.detach()
        return out

    @torch.no_grad()
    def generate(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> torch.Tensor:
        with self.rt.autocast():
            return self.nets["G"].eval()(inputs["z"].to(self.rt.device)).float()

    def sample_grids(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> dict[str, torch.Tensor]:
        """G(z) beside G(E(G(z))): how well E inverts G on its own samples."""
        E = (nets or self.nets)["E"]
        fake = self.generate(inputs, nets)
        with torch.no_grad(), self.rt.autocast():
            recon = self.nets["G"](E(fake)).float()
        return {"samples": fake, "reconstructions": recon}
