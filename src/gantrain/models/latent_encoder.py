"""`model=latent_encoder model.generator=RUN`: an encoder E for a frozen, already trained generator.

The latent regressor of GAN inversion: min_E E_z ||z - E(G(z))||^2 on fresh pairs (z, G(z)) each batch.
With `image_weight > 0` it also trains on the real images of `data` through G (the in-domain variant:
+ image_weight * ||x - G(E(x))||^2), which helps it transfer from G's samples to real images.

G comes from RUN (a run directory or checkpoint of any family with an unconditional generator G: gan,
dcgan, bigan); its EMA weights are used when the run kept them. The generator's model config is copied
into `generator_model` so this run's checkpoints are self-contained (RUN is not needed to resume, sample
or invert). `gantrain-invert THIS_RUN --method encoder|hybrid` then uses G and E from this run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
from omegaconf import MISSING, OmegaConf

from gantrain.data.base import DataInfo
from gantrain.errors import GantrainError
from gantrain.models.base import GANModel
from gantrain.nets.encoder import ENCODER_ARCHS, build_encoder
from gantrain.nets.init import init_weights
from gantrain.runs import build_model, load_trained


class LatentEncoder(GANModel):
    generator_names = ("E",)

    @dataclass
    class Config:
        name: str = MISSING
        generator: Optional[str] = MISSING  # run directory or checkpoint of the trained generator (required)
        arch: str = MISSING  # dcgan (conv) | mlp
        ndf: int = MISSING
        hidden: list[int] = MISSING  # arch=mlp
        norm: str = MISSING
        latent_weight: float = MISSING  # ||z - E(G(z))||^2 on G's samples
        image_weight: float = MISSING  # ||x - G(E(x))||^2 on real images (in-domain variant)
        use_ema: bool = MISSING  # take the generator run's EMA weights when it has them
        init_type: str = MISSING
        init_gain: float = MISSING
        generator_model: Optional[Dict[str, Any]] = MISSING  # filled in from RUN at the start of training

    def __init__(self, cfg, info: DataInfo) -> None:
        super().__init__(cfg, info)
        if cfg.arch not in ENCODER_ARCHS:
            raise GantrainError(f"unknown model.arch {cfg.arch!r}; choose one of: {', '.join(ENCODER_ARCHS)}")
        if cfg.latent_weight <= 0 and cfg.image_weight <= 0:
            raise GantrainError("model.latent_weight and model.image_weight are both 0: the encoder would learn nothing")
        self.nets["G"], self.gen_cfg = self._generator(cfg, info)
        self.nets["G"].requires_grad_(False)
        self.nets["E"] = build_encoder(cfg.arch, info.channels, info.image_size, self.latent_prior[0], ndf=cfg.ndf,
                                       hidden=list(cfg.hidden), norm=cfg.norm)
        init_weights(self.nets["E"], cfg.init_type, cfg.init_gain)

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

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"E": list(self.nets["E"].parameters())}

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        G, E, rt = self.nets["G"], self.nets["E"], self.rt
        G.eval()  # the trainer puts every net back in train mode after sampling
        x = batch["image"]
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
