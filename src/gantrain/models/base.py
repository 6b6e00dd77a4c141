"""The contract between a family and the generic trainer.

A family owns its networks (`self.nets`), its optimisers and its training step. The trainer owns everything
else: devices, precision, the loop, schedules, EMA, checkpoints, logging and evaluation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn

from gantrain.data.base import DataInfo, DataSource
from gantrain.inversion import sample_prior
from gantrain.losses import gradient_penalty, make_loss
from gantrain.nets.freeze import frozen
from gantrain.runtime import Runtime

OptimizerFactory = Callable[[str, Iterable[nn.Parameter]], torch.optim.Optimizer]


class GANModel(ABC):
    """Base class of every family.

    Subclasses declare `Config` (their typed schema), build `self.nets` in `__init__`, and implement
    `train_step` and `generate`. `generator_names` lists the nets that EMA averages and sampling uses.
    """

    Config: type
    generator_names: tuple[str, ...] = ("G",)
    # read by the metrics (metrics/base.py): what runs when eval.metrics is null, the directions `translate`
    # accepts (() for sampling-only families), and what samples are conditioned on (None, "label", "text")
    default_metrics: tuple[str, ...] = ("classifier",)
    directions: tuple[str, ...] = ()
    conditioning: str | None = None
    steps_per_epoch: int = 1  # set by the trainer: for schedules a paper states in epochs

    def __init__(self, cfg: Any, info: DataInfo) -> None:
        self.cfg = cfg
        self.info = info
        self.nets = nn.ModuleDict()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.rt = Runtime(torch.device("cpu"), "32")
        self.loss = make_loss(cfg.loss) if hasattr(cfg, "loss") else None

    # ----- set-up, called by the trainer -----
    def attach(self, runtime: Runtime) -> None:
        """Move the nets to the runtime's device and memory format."""
        self.rt = runtime
        self.nets.to(runtime.device)
        if runtime.channels_last:
            self.nets.to(memory_format=torch.channels_last)

    def prepare(self, data: DataSource, run_dir: Path | None = None) -> None:
        """Called by the trainer once the dataset exists and the nets are on their device: work that needs the
        data before training (real inputs for the grids, pretraining a frozen text encoder). Nothing by default."""

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """Which parameters each optimiser updates; the default is one optimiser per net."""
        return {name: list(net.parameters()) for name, net in self.nets.items()}

    def configure_optimizers(self, make: OptimizerFactory) -> None:
        self.optimizers = {name: make(name, params) for name, params in self.optimizer_groups().items()}

    def update(self, name: str, loss: torch.Tensor) -> None:
        """Backward `loss` and step optimiser `name` (grad scaling handled by the runtime)."""
        self.rt.update(name, loss, self.optimizers[name])

    # D while G steps (`with self.frozen(D): ...`): no weight gradients are computed for the frozen nets
    frozen = staticmethod(frozen)

    def gradient_penalty(self, critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """The WGAN-GP term, at a precision where its unscaled input gradients cannot underflow (see
        `Runtime.penalty_precision`)."""
        with self.rt.penalty_precision():
            return gradient_penalty(critic, real.float(), fake.float())

    # ----- training -----
    @abstractmethod
    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """One batch of training; returns detached scalar losses (read back only at log steps)."""

    @property
    def latent_prior(self) -> tuple[int, str]:
        """(z_dim, z_dist) of the generator's prior: what `sample_z` draws and inversion keeps z on."""
        return int(self.cfg.z_dim), str(self.cfg.z_dist)

    def sample_z(self, n: int, generator: torch.Generator | None = None, device: torch.device | None = None) -> torch.Tensor:
        """Draw from the latent prior `model.z_dist` (normal or uniform on [-1, 1])."""
        z_dim, z_dist = self.latent_prior
        return sample_prior(n, z_dim, z_dist, generator, device or self.rt.device)

    # ----- sampling -----
    def fixed_inputs(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Inputs for the periodic sample grids (drawn once, kept fixed for the whole run)."""
        return {"z": self.sample_z(n, generator)}

    @abstractmethod
    def generate(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> torch.Tensor:
        """Images in [-1, 1] for `inputs` (as from `fixed_inputs`), using `nets` (e.g. the EMA copies) if given."""

    def sample_grids(self, inputs: dict[str, torch.Tensor], nets: nn.ModuleDict | None = None) -> dict[str, torch.Tensor]:
        """Named image batches to log as grids."""
        return {"samples": self.generate(inputs, nets)}

    def grid_rows(self) -> int | None:
        """Images per grid row (None: square grid)."""
        return None

    # ----- family state beyond nets and optimisers (e.g. an image pool) -----
    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass
