"""What the unpaired translation families (CycleGAN, DualGAN, DiscoGAN, UNIT) share.

Each translates A -> B and B -> A. The sample grids show fixed test images of both domains with their
translations and reconstructions (real_A, fake_B, rec_A, real_B, fake_A, rec_B); `translate` is what
`gantrain-translate` and the translation metrics call.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from gantrain.data.base import DIRECTIONS, DataInfo, DataSource, check_direction as validate_direction
from gantrain.errors import GantrainError
from gantrain.models.base import GANModel
from gantrain.nets.generators import build_generator
from gantrain.nets.init import init_weights
from gantrain.nets.patchgan import build_patch_discriminator

GRID_IMAGES = 8  # images per domain in the sample grids


class TranslationModel(GANModel):
    """Base of the two-domain families; subclasses build `self.nets` (G_A: A -> B, G_B: B -> A, D_A, D_B)."""

    generator_names: tuple[str, ...] = ("G_A", "G_B")
    # what `translate` accepts, hence which per-direction metrics are computed (a one-sided family sets ("AtoB",))
    directions: tuple[str, ...] = DIRECTIONS
    default_metrics = ("translation",)

    def __init__(self, cfg, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.channels_A, self.channels_B = info.channels_A, info.channels_B
        self._fixed: dict[str, torch.Tensor] = {}

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """One optimiser over every generator net, one over the discriminators (D_A and D_B, as the reference
        CycleGAN; pix2pix's one D)."""
        gens = [p for name in self.generator_names for p in self.nets[name].parameters()]
        return {"G": gens, "D": [p for name, net in self.nets.items() if name.startswith("D") for p in net.parameters()]}

    def prepare(self, data: DataSource, run_dir: Path | None = None) -> None:
        """Keep the first test images of each domain for the grids (test split: never trained on)."""
        split = data.split("test")
        if not hasattr(split, "domain"):
            raise GantrainError(f"model={self.cfg.name} needs two-domain data (data=digits2negative, unpaired_folder, ...)")
        for side in ("A", "B"):
            images = split.domain(side)
            n = min(GRID_IMAGES, len(images))
            self._fixed[side] = images.batch(torch.arange(n))["image"]

    def build_patch_nets(self, cfg, bias: bool = True) -> None:
        """G_A: A -> B and G_B: B -> A (`model.netG`), PatchGAN D_A on B and D_B on A (`model.netD`), initialised;
        `bias`: whether convs get a bias when `norm` is none."""
        ca, cb = self.channels_A, self.channels_B
        self.nets["G_A"] = build_generator(cfg.netG, ca, cb, cfg.ngf, cfg.norm, cfg.dropout, bias)
        self.nets["G_B"] = build_generator(cfg.netG, cb, ca, cfg.ngf, cfg.norm, cfg.dropout, bias)
        self.nets["D_A"] = build_patch_discriminator(cfg.netD, cb, cfg.ndf, cfg.n_layers_D, cfg.norm, bias)
        self.nets["D_B"] = build_patch_discriminator(cfg.netD, ca, cfg.ndf, cfg.n_layers_D, cfg.norm, bias)
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain)

    # ----- translation -----
    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str, nets: nn.ModuleDict | None = None) -> torch.Tensor:
        """Images of one domain in [-1, 1] -> the other domain (`direction` AtoB: G_A, BtoA: G_B); no grad."""
        self.check_direction(direction)
        G = (nets or self.nets)["G_A" if direction == "AtoB" else "G_B"]
        with self.rt.autocast():
            return G(x).float()

    def size_multiple(self, direction: str) -> int:
        """What image sides must divide by for `translate` (inputs are padded to it)."""
        return 1

    @staticmethod
    def check_direction(direction: str) -> None:
        validate_direction(direction, "direction")

    # ----- sampling: grids and the generic generate() -----
    def fixed_inputs(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if not self._fixed:
            raise GantrainError(f"model={self.cfg.name} translates images: use gantrain-translate RUN --input DIR --out DIR")
        return {k: v[: max(1, min(n, GRID_IMAGES))] for k, v in self._fixed.items()}

    @torch.no_grad()
    def generate(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> torch.Tensor:
        """Translations of the grid inputs in the first direction the family learns (AtoB, or pix2pix's one)."""
        direction = self.directions[0]
        return self.translate(inputs[direction[0]].to(self.rt.device), direction, nets)

    @torch.no_grad()
    def sample_grids(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> dict[str, torch.Tensor]:
        a, b = inputs["A"].to(self.rt.device), inputs["B"].to(self.rt.device)
        fake_b, fake_a = self.translate(a, "AtoB", nets), self.translate(b, "BtoA", nets)
        rec_a, rec_b = self.translate(fake_b, "BtoA", nets), self.translate(fake_a, "AtoB", nets)
        return {"real_A": a, "fake_B": fake_b, "rec_A": rec_a, "real_B": b, "fake_A": fake_a, "rec_B": rec_b}

    def grid_rows(self) -> int | None:
        return GRID_IMAGES
