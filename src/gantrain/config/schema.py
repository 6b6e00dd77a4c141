"""Typed schemas for every config group, so a misspelt or mistyped key fails before training starts.

Groups with a `_target_` (model, data) are validated against the `Config` dataclass of the class they name;
the fixed groups (trainer, optim, logger, eval) against the dataclasses below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from gantrain.errors import GantrainError


@dataclass
class EMAConfig:
    decay: Optional[float] = None  # null: no EMA generator; e.g. 0.999
    start_step: int = 0  # copy weights (no averaging) before this step
    every: int = 1
    bn_batches: int = 16  # standing batch-norm statistics for the EMA nets from this many batches; 0 copies the live ones


@dataclass
class TrainerConfig:
    max_steps: Optional[int] = None  # one step = one batch; the first of max_steps/max_epochs to be reached stops
    max_epochs: Optional[int] = None
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    num_threads: Optional[int] = None  # CPU intra-op threads (null: torch's default); 1 suits tiny nets on a busy CPU
    precision: str = "auto"  # auto | 32 | bf16 | 16
    compile: bool = False
    channels_last: bool = False
    deterministic: bool = False
    log_every: int = 50
    sample_every: int = 500
    ckpt_every: int = 1000
    keep_last: int = 3
    num_sample_images: int = 64
    stop_on_nonfinite: bool = True
    progress_bar: bool = True
    sync_batchnorm: bool = False
    cudnn_benchmark: bool = True  # cuDNN autotuning of convolution kernels on CUDA (off under deterministic; ignored elsewhere)
    matmul_precision: str = "high"  # torch.set_float32_matmul_precision: highest | high (TF32 on Ampere+) | medium
    ema: EMAConfig = field(default_factory=EMAConfig)


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | adamw | rmsprop | sgd
    lr: float = 2e-4
    lr_D: Optional[float] = None  # null: same as lr
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    weight_decay: float = 0.0
    momentum: float = 0.0
    eps: float = 1e-8
    schedule: str = "constant"  # constant | linear_decay | cosine | step | exponential
    decay_epochs: Optional[int] = None  # linear_decay: decay over the last N epochs (null: the whole run)
    decay_steps: Optional[int] = None  # same in steps; wins over decay_epochs
    step_epochs: int = 100  # step: multiply by gamma every step_epochs
    gamma: float = 0.5
    final_lr_ratio: float = 0.01  # exponential: lr reaches lr * final_lr_ratio at the end
    fused: Optional[bool] = None  # null: fused kernels on CUDA, plain elsewhere


@dataclass
class LoggerConfig:
    tensorboard: bool = True
    jsonl: bool = True
    hparams: bool = True


@dataclass
class EvalConfig:
    every: int = 0  # 0: only at the end of training
    at_end: bool = True
    metrics: list[str] = field(default_factory=list)  # names in gantrain.metrics.evaluator.METRICS
    num_samples: int = 1000  # generated images per evaluation
    num_real: Optional[int] = None  # real reference images (null: the whole eval.split)
    batch_size: int = 250
    monitor: Optional[str] = None  # metric that selects checkpoints/best.pt
    mode: str = "min"  # min | max
    seed: int = 1234
    split: str = "test"  # reference split for FID/KID and the classifier metrics
    backbone: str = "inception"  # feature network of fid/kid/is: inception | classifier
    resize: str = "tf_bilinear"  # to Inception's 299 px: tf_bilinear | bilinear_antialias | bicubic_antialias
    kid_subsets: int = 100
    kid_subset_size: int = 1000  # clipped to the smaller of num_real and num_samples (recorded)
    is_splits: int = 10
    inception_weights: Optional[str] = None  # weights-inception-2015-12-05-6726825d.pth (null: torch hub cache)
    inception_download: bool = True  # fetch the weights into the torch hub cache when absent
    classifier_cache: Optional[str] = None  # folder for cached dataset classifiers (null: ~/.cache/gantrain)
    reference_cache: Optional[str] = None  # folder for cached real-image features (null: ~/.cache/gantrain/reference)


FIXED_GROUPS: dict[str, type] = {
    "trainer": TrainerConfig,
    "optim": OptimConfig,
    "logger": LoggerConfig,
    "eval": EvalConfig,
}
TARGET_GROUPS = ("model", "data")
TOP_LEVEL_KEYS = {"seed", "resume", "run_name", "hydra", "paths", "experiment", "hparams_search", "debug", "tags",
                  "optimized_metric"} | set(FIXED_GROUPS) | set(TARGET_GROUPS)
ALLOWED_CHOICES = {
    "trainer.device": None,
    "trainer.precision": ("auto", "32", "bf16", "16"),
    "optim.name": ("adam", "adamw", "rmsprop", "sgd"),
    "optim.schedule": ("constant", "linear_decay", "cosine", "step", "exponential"),
    "eval.mode": ("min", "max"),
    "eval.resize": ("tf_bilinear", "bilinear_antialias", "bicubic_antialias"),
}


def resolve_target(target: str) -> type:
    """Import a `_target_`; only `gantrain.*` may be named, since configs travel inside checkpoints."""
    if not isinstance(target, str) or not target.startswith("gantrain."):
        raise GantrainError(f"_target_ {target!r} is not allowed: only gantrain.* classes may be instantiated from a config")
    module_name, _, attr = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise GantrainError(f"_target_ {target!r} cannot be imported ({exc}); check the spelling in your config") from None


def _validate_node(node: Any, schema: type, where: str) -> DictConfig:
    if not isinstance(node, DictConfig):
        raise GantrainError(f"config group {where!r} must be a mapping, got {type(node).__name__}")
    data = OmegaConf.to_container(node, resolve=True)
    target = data.pop("_target_", None)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), data)
    except (ConfigKeyError, ConfigAttributeError) as exc:
        key = getattr(exc, "key", None) or str(exc).splitlines()[0]
        allowed = ", ".join(sorted(OmegaConf.structured(schema).keys()))
        raise GantrainError(f"unknown config key {where}.{key}; valid keys are: {allowed}") from None
    except ValidationError as exc:
        key = getattr(exc, "full_key", "") or getattr(exc, "key", "")
        raise GantrainError(f"bad value for {where}.{key}: {str(exc).splitlines()[0]}") from None
    except OmegaConfBaseException as exc:
        raise GantrainError(f"invalid config group {where}: {str(exc).splitlines()[0]}") from None
    if target is not None:
        with_target = OmegaConf.create({"_target_": target})
        merged = OmegaConf.merge(with_target, merged)
    return merged


def validate_config(cfg: DictConfig) -> DictConfig:
    """Return a copy of `cfg` with every group checked against its schema and filled with defaults."""
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    unknown = set(cfg.keys()) - TOP_LEVEL_KEYS
    if unknown:
        raise GantrainError(f"unknown top-level config key(s) {sorted(unknown)}; valid keys are: {sorted(TOP_LEVEL_KEYS)}")
    for group, schema in FIXED_GROUPS.items():
        cfg[group] = _validate_node(cfg.get(group) or OmegaConf.create({}), schema, group)
    for group in TARGET_GROUPS:
        node = cfg.get(group)
        if node is None or "_target_" not in node:
            raise GantrainError(f"config group {group!r} has no _target_; pick one with {group}=<name>")
        cls = resolve_target(node._target_)
        schema = getattr(cls, "Config", None)
        if schema is None:
            raise GantrainError(f"{node._target_} declares no Config schema")
        cfg[group] = _validate_node(node, schema, group)
    for dotted, choices in ALLOWED_CHOICES.items():
        if choices is None:
            continue
        value = str(OmegaConf.select(cfg, dotted))
        if value not in choices:
            raise GantrainError(f"{dotted}={value} is not valid; choose one of: {', '.join(choices)}")
    if cfg.trainer.max_steps is None and cfg.trainer.max_epochs is None:
        raise GantrainError("set trainer.max_steps or trainer.max_epochs so the run knows when to stop")
    return cfg
