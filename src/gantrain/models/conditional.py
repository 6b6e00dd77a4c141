"""What the class-conditional families (`cgan`, `acgan`) share: labels for the fakes, class-ordered sample
grids, and generating images of chosen classes (used by `gantrain-sample --labels`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from omegaconf import MISSING

from gantrain.data.base import DataInfo
from gantrain.errors import GantrainError
from gantrain.models.base import GANModel
from gantrain.nets.diffaug import DiffAugment

LABEL_SAMPLING = ("data", "uniform")


def label_probabilities(info: DataInfo, mode: str) -> torch.Tensor:
    """Class probabilities for the fakes' labels: the training split's class frequencies, or uniform."""
    if mode not in LABEL_SAMPLING:
        raise GantrainError(f"unknown model.label_sampling {mode!r}; choose one of: {', '.join(LABEL_SAMPLING)}")
    k = info.num_classes
    if mode == "data" and info.class_counts and sum(info.class_counts) > 0:
        counts = torch.tensor(info.class_counts, dtype=torch.float64)
        return (counts / counts.sum()).float()
    return torch.full((k,), 1.0 / k)


def grid_labels(n: int, num_classes: int) -> torch.Tensor:
    """Labels in class-major order, `n // K` images per class (at least 1), wrapping when n is not a multiple:
    a grid with that many images per row shows one row per class, and evaluation batches stay balanced."""
    per_class = max(n // num_classes, 1)
    return (torch.arange(n) // per_class) % num_classes


@dataclass
class ConditionalConfig:
    """The keys `cgan` and `acgan` share (each family adds its own; the YAML files hold the paper values)."""

    name: str = MISSING
    z_dim: int = MISSING
    z_dist: str = MISSING  # normal | uniform
    ngf: int = MISSING
    ndf: int = MISSING
    norm_G: str = MISSING
    norm_D: str = MISSING  # none or layer with wgan-gp
    g_conditioning: str = MISSING  # concat (paper: label embedding joined to z) | multiply | cbn
    embed_dim: int = MISSING  # label embedding size for the concat modes
    label_sampling: str = MISSING  # data (training class frequencies) | uniform
    loss: str = MISSING  # bce | lsgan | hinge | wgan | wgan-gp
    d_steps: int = MISSING
    gp_weight: float = MISSING
    clip_value: float = MISSING
    augment: str = MISSING  # DiffAugment policy for D's inputs, e.g. "translation,cutout"
    init_type: str = MISSING
    init_gain: float = MISSING


class ConditionalGANModel(GANModel):
    """Base of the conditional families: `generate` reads `inputs["label"]`; `self.G(z, y)` is the generator."""

    conditioning = "label"

    def __init__(self, cfg: Any, info: DataInfo) -> None:
        super().__init__(cfg, info)
        if info.num_classes < 1 or not info.class_names:
            raise GantrainError(
                f"model={cfg.name} is class-conditional but data={info.name} has no labels; use a labelled dataset "
                f"(digits, mnist, fashion_mnist, cifar10, or image_folder with class subfolders)"
            )
        self.num_classes = info.num_classes
        self.class_names = list(info.class_names)
        self._label_probs = label_probabilities(info, cfg.label_sampling)
        self._grid_nrow: int | None = None
        self.augment = DiffAugment(cfg.augment)  # applied to every image D sees (identity when empty)

    def sample_labels(self, n: int) -> torch.Tensor:
        """Labels for a batch of fakes, drawn by `model.label_sampling` (global RNG, so resume stays exact)."""
        probs = self._label_probs.to(self.rt.device)
        return torch.multinomial(probs, n, replacement=True)

    def fixed_inputs(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"z": self.sample_z(n, generator), "label": grid_labels(n, self.num_classes).to(self.rt.device)}

    def inputs_for_labels(self, labels: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Generator inputs for the given class indices (fresh z from `generator`)."""
        return {"z": self.sample_z(len(labels), generator), "label": labels.to(self.rt.device)}

    @torch.no_grad()
    def generate(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> torch.Tensor:
        G = (nets or self.nets)["G"]
        with self.rt.autocast():
            return G(inputs["z"].to(self.rt.device), inputs["label"].to(self.rt.device)).float()

    def sample_grids(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> dict[str, torch.Tensor]:
        self._grid_nrow = max(len(inputs["label"]) // self.num_classes, 1)
        return {"samples": self.generate(inputs, nets)}

    def grid_rows(self) -> int | None:
        """Images per grid row = images per class, so each row is one class (fixed noise across steps)."""
        return self._grid_nrow

    @staticmethod
    def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (logits.detach().argmax(1) == labels).float().mean()
