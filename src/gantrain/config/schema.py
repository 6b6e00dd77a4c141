"""Typed schemas for every config group, so a misspelt or mistyped key fails before training starts.

Groups with a `_target_` (model, data) are validated against the `Config` dataclass of the class they name;
the fixed groups (trainer, optim, logger, eval) against the dataclasses below. Schemas declare keys and types
only (`= MISSING`): the YAML files are the one place for values.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from gantrain.errors import GantrainError


@dataclass
class EMAConfig:
    decay: Optional[float] = MISSING  # null: no EMA generator; e.g. 0.999
    start_step: int = MISSING  # copy weights (no averaging) before this step
    every: int = MISSING
    bn_batches: int = MISSING  # standing batch-norm statistics for the EMA nets from this many batches; 0 copies the live ones


@dataclass
class TrainerConfig:
    max_steps: Optional[int] = MISSING  # one step = one batch; the first of max_steps/max_epochs to be reached stops
    max_epochs: Optional[int] = MISSING
    device: str = MISSING  # auto | cpu | cuda | cuda:N | mps
    num_threads: Optional[int] = MISSING  # CPU intra-op threads (null: torch's default); 1 suits tiny nets on a busy CPU
    precision: str = MISSING  # auto | 32 | bf16 | 16
    compile: bool = MISSING
    channels_last: bool = MISSING
    deterministic: bool = MISSING
    log_every: int = MISSING
    sample_every: int = MISSING
    ckpt_every: int = MISSING
    keep_last: int = MISSING
    num_sample_images: int = MISSING
    stop_on_nonfinite: bool = MISSING
    progress_bar: bool = MISSING
    sync_batchnorm: bool = MISSING
    cudnn_benchmark: bool = MISSING  # cuDNN autotuning of convolution kernels on CUDA (off under deterministic; ignored elsewhere)
    matmul_precision: str = MISSING  # torch.set_float32_matmul_precision: highest | high (TF32 on Ampere+) | medium
    ema: EMAConfig = field(default_factory=EMAConfig)


@dataclass
class OptimConfig:
    name: str = MISSING  # adam | adamw | rmsprop (torch's) | rmsprop_tf (TensorFlow 1's) | sgd
    lr: float = MISSING
    lr_D: Optional[float] = MISSING  # null: same as lr
    betas: list[float] = MISSING
    weight_decay: float = MISSING
    momentum: float = MISSING
    momentum_final: Optional[float] = MISSING  # null: constant momentum; else linear from momentum to this (SGD, RMSProp)
    momentum_start: int = MISSING  # epoch the momentum ramp starts
    momentum_saturate: int = MISSING  # epoch it reaches momentum_final
    eps: float = MISSING
    rho: float = MISSING  # RMSProp's mean-square decay (torch's alpha; TF's decay, 0.9 in configs/optim/rmsprop_tf.yaml)
    schedule: str = MISSING  # constant | linear_decay | epoch_linear | cosine | step | exponential | exponential_step
    decay_epochs: Optional[int] = MISSING  # linear_decay/epoch_linear/exponential: decay over the last N epochs (null: the whole run)
    decay_steps: Optional[int] = MISSING  # same in steps; wins over decay_epochs
    step_epochs: int = MISSING  # step: multiply by gamma every step_epochs
    gamma: float = MISSING  # step: factor every step_epochs; exponential_step: factor every update
    final_lr_ratio: float = MISSING  # exponential: lr reaches lr * final_lr_ratio at the end; exponential_step: its floor
    fused: Optional[bool] = MISSING  # null: fused kernels on CUDA, plain elsewhere


@dataclass
class LoggerConfig:
    tensorboard: bool = MISSING
    jsonl: bool = MISSING
    hparams: bool = MISSING  # with tensorboard: the flattened config and final metrics as an hparams session


@dataclass
class EvalConfig:
    every: int = MISSING  # 0: only at the end of training
    at_end: bool = MISSING
    metrics: Optional[list[str]] = MISSING  # names in gantrain.metrics.base.METRICS; null: the family's default_metrics
    num_samples: int = MISSING  # generated images per evaluation
    num_real: Optional[int] = MISSING  # real reference images (null: the whole eval.split)
    batch_size: int = MISSING
    monitor: Optional[str] = MISSING  # metric that selects checkpoints/best.pt
    mode: str = MISSING  # min | max
    seed: int = MISSING
    split: str = MISSING  # reference split for FID/KID and the classifier metrics
    backbone: str = MISSING  # feature network of fid/kid/is: inception | classifier
    resize: str = MISSING  # to Inception's 299 px: tf_bilinear | bilinear_antialias | bicubic_antialias
    kid_subsets: int = MISSING
    kid_subset_size: int = MISSING  # clipped to the smaller of num_real and num_samples (recorded)
    is_splits: int = MISSING
    inception_weights: Optional[str] = MISSING  # weights-inception-2015-12-05-6726825d.pth (null: torch hub cache)
    inception_download: bool = MISSING  # fetch the weights into the torch hub cache when absent
    classifier_cache: Optional[str] = MISSING  # folder for cached dataset classifiers (null: ~/.cache/gantrain)
    reference_cache: Optional[str] = MISSING  # folder for cached real-image features (null: ~/.cache/gantrain/reference)
    # translation FID/KID per direction (issue 22)
    data_metrics: list[str] = MISSING  # run beside eval.metrics; photo data YAMLs name [fid, kid]
    translation_reference: str = MISSING  # target-domain reference: test (CUT paper) | train+test (GAN Compression)


FIXED_GROUPS: dict[str, type] = {
    "trainer": TrainerConfig,
    "optim": OptimConfig,
    "logger": LoggerConfig,
    "eval": EvalConfig,
}
TARGET_GROUPS = ("model", "data")
TOP_LEVEL_KEYS = {"seed", "resume", "run_name", "hydra", "paths", "experiment", "hparams_search", "debug", "tags",
                  "optimized_metric"} | set(FIXED_GROUPS) | set(TARGET_GROUPS)


@dataclass(frozen=True)
class Allowed:
    """The values one config key may take: a numeric range (closed unless `*_open`), or a set of choices.

    Checked once on the composed config, before anything is built, so a bad value is one line naming the key
    instead of a traceback from deep inside training. A list value (e.g. `optim.betas`) is checked per element.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None

    def fix(self) -> str:
        """What to pass instead, as the second half of the error line."""
        if self.choices is not None:
            return "choose one of: " + ", ".join(self.choices)
        if self.low is not None and self.high is not None:
            return f"use a value in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"use a value {'>' if self.low_open else '>='} {self.low:g}"
        return f"use a value {'<' if self.high_open else '<='} {self.high:g}"

    def accepts(self, value: Any) -> bool:
        if self.choices is not None:
            return str(value) in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)


AT_LEAST_0 = Allowed(low=0)
AT_LEAST_1 = Allowed(low=1)
POSITIVE = Allowed(low=0, low_open=True)
FRACTION = Allowed(low=0, high=1)
OPEN_FRACTION = Allowed(low=0, high=1, low_open=True, high_open=True)

# Every constrained key in one place. Keys a group does not declare (e.g. model.d_steps for cyclegan) are skipped;
# null is always accepted where the schema allows it (Optional: "not set").
ALLOWED: dict[str, Allowed] = {
    "trainer.max_steps": AT_LEAST_1,
    "trainer.max_epochs": AT_LEAST_1,
    "trainer.num_threads": AT_LEAST_1,
    "trainer.precision": Allowed(choices=("auto", "32", "bf16", "16")),
    "trainer.log_every": AT_LEAST_1,
    "trainer.sample_every": AT_LEAST_0,
    "trainer.ckpt_every": AT_LEAST_0,
    "trainer.keep_last": AT_LEAST_1,
    "trainer.num_sample_images": AT_LEAST_1,
    "trainer.ema.decay": OPEN_FRACTION,
    "trainer.ema.start_step": AT_LEAST_0,
    "trainer.ema.every": AT_LEAST_1,
    "trainer.ema.bn_batches": AT_LEAST_0,
    "optim.name": Allowed(choices=("adam", "adamw", "rmsprop", "rmsprop_tf", "sgd")),
    "optim.lr": POSITIVE,
    "optim.lr_D": POSITIVE,
    "optim.betas": Allowed(low=0, high=1, high_open=True),
    "optim.weight_decay": AT_LEAST_0,
    "optim.momentum": Allowed(low=0, high=1, high_open=True),
    "optim.eps": POSITIVE,
    "optim.rho": Allowed(low=0, high=1, high_open=True),
    "optim.schedule": Allowed(choices=("constant", "linear_decay", "epoch_linear", "cosine", "step", "exponential", "exponential_step")),
    "optim.momentum_final": Allowed(low=0, high=1, high_open=True),
    "optim.momentum_start": AT_LEAST_0,
    "optim.momentum_saturate": AT_LEAST_1,
    "model.g_style": Allowed(choices=("official", "lrelu")),
    "optim.decay_epochs": AT_LEAST_1,
    "optim.decay_steps": AT_LEAST_1,
    "optim.step_epochs": AT_LEAST_1,
    "optim.gamma": POSITIVE,
    "optim.final_lr_ratio": Allowed(low=0, high=1, low_open=True),
    "eval.every": AT_LEAST_0,
    "eval.num_samples": AT_LEAST_1,
    "eval.num_real": AT_LEAST_1,
    "eval.batch_size": AT_LEAST_1,
    "eval.mode": Allowed(choices=("min", "max")),
    "eval.resize": Allowed(choices=("tf_bilinear", "bilinear_antialias", "bicubic_antialias")),
    "eval.kid_subsets": AT_LEAST_1,
    "eval.kid_subset_size": AT_LEAST_1,
    "eval.is_splits": AT_LEAST_1,
    "data.batch_size": AT_LEAST_1,
    "data.num_workers": AT_LEAST_0,
    "data.image_size": AT_LEAST_1,
    "data.load_size": AT_LEAST_1,
    "data.crop_size": AT_LEAST_1,
    "data.channels": Allowed(choices=("1", "3")),
    "data.direction": Allowed(choices=("AtoB", "BtoA")),
    "data.max_dataset_size": AT_LEAST_1,
    "data.test_fraction": Allowed(low=0, high=1, high_open=True),
    "model.z_dim": AT_LEAST_1,
    "model.z_dist": Allowed(choices=("normal", "uniform")),
    "model.ngf": AT_LEAST_1,
    "model.ndf": AT_LEAST_1,
    "model.g_hidden": AT_LEAST_1,
    "model.d_hidden": AT_LEAST_1,
    "model.e_hidden": AT_LEAST_1,
    "model.d_x_hidden": AT_LEAST_1,
    "model.d_z_hidden": AT_LEAST_1,
    "model.d_joint_hidden": AT_LEAST_1,
    "model.hidden": AT_LEAST_1,
    "model.norm": Allowed(choices=("batch", "instance", "layer", "none")),
    "model.norm_G": Allowed(choices=("batch", "instance", "layer", "none")),
    "model.norm_D": Allowed(choices=("batch", "instance", "layer", "none")),
    "model.norm_E": Allowed(choices=("batch", "instance", "layer", "none")),
    "model.init_type": Allowed(choices=("normal", "xavier", "xavier_uniform", "kaiming", "orthogonal", "default")),
    "model.init_gain": POSITIVE,
    "model.d_steps": AT_LEAST_1,
    "model.d_every": AT_LEAST_1,
    "model.gp_weight": AT_LEAST_0,
    "model.clip_value": POSITIVE,
    "model.topk_gamma": Allowed(low=0, high=1, low_open=True),
    "model.topk_min": Allowed(low=0, high=1, low_open=True),
    "model.embed_dim": AT_LEAST_1,
    "model.class_weight": AT_LEAST_0,
    "model.encoder": Allowed(choices=("deterministic", "stochastic")),
    "model.d_dropout": Allowed(low=0, high=1, high_open=True),
    "model.shared_g": AT_LEAST_0,
    "model.shared_d": AT_LEAST_0,
    "model.n_layers_D": AT_LEAST_1,
    "model.n_res": AT_LEAST_0,
    "model.pool_size": AT_LEAST_0,
    "model.lambda_A": AT_LEAST_0,
    "model.lambda_B": AT_LEAST_0,
    "model.lambda_identity": AT_LEAST_0,
    "model.lambda_L1": AT_LEAST_0,
    "model.lambda_recon": AT_LEAST_0,
    "model.lambda_gan": AT_LEAST_0,
    "model.lambda_kl": AT_LEAST_0,
    "model.lambda_cycle": AT_LEAST_0,
    "model.lambda_cycle_kl": AT_LEAST_0,
    "model.bottleneck": AT_LEAST_0,
    "model.code_size": AT_LEAST_1,
    "model.gan_weight": AT_LEAST_0,
    "model.fm_weight": AT_LEAST_0,
    "model.recon_rate_start": AT_LEAST_0,
    "model.recon_rate": AT_LEAST_0,
    "model.curriculum_iters": AT_LEAST_0,
    "model.test_mode": Allowed(choices=("train", "eval")),
    "model.proj_dim": AT_LEAST_1,
    "model.proj_norm_G": Allowed(choices=("batch", "layer", "none")),
    "model.proj_norm_D": Allowed(choices=("batch", "layer", "none")),
    "model.g_upsample": Allowed(choices=("transposed", "resize", "resize_last")),
    "model.num_captions": Allowed(low=1, high=16),  # data.keys: 16 draw numbers per caption set
    "model.cls_weight": AT_LEAST_0,
    "model.int_beta": FRACTION,
    "model.lambda_ms": AT_LEAST_0,
    "model.text_dim": AT_LEAST_1,
    "model.word_dim": AT_LEAST_1,
    "model.pretrain_steps": AT_LEAST_0,
    "model.pretrain_batch": AT_LEAST_1,
    "model.pretrain_lr": POSITIVE,
    "model.bank_size": AT_LEAST_1,
    "model.grid_captions": AT_LEAST_1,
    "model.latent_weight": AT_LEAST_0,
    "model.image_weight": AT_LEAST_0,
    "eval.translation_reference": Allowed(choices=("test", "train+test")),
    "data.cache": Allowed(choices=("auto", "device", "host", "stream")),
    "data.cache_budget_gb": POSITIVE,
}
_ABSENT = object()


def check_allowed(cfg: DictConfig) -> None:
    """Raise one GantrainError for the first key of `ALLOWED` whose value is outside its range or choices."""
    for dotted, allowed in ALLOWED.items():
        value = OmegaConf.select(cfg, dotted, default=_ABSENT)
        if value is _ABSENT or value is None:
            continue
        values = list(value) if OmegaConf.is_list(value) else [value]
        for v in values:
            if not allowed.accepts(v):
                shown = OmegaConf.to_container(value) if OmegaConf.is_list(value) else value
                raise GantrainError(f"{dotted}={shown} is not valid; {allowed.fix()}")


def resolve_target(target: str) -> type:
    """Import a `_target_`; only `gantrain.*` may be named, since configs travel inside checkpoints."""
    if not isinstance(target, str) or not target.startswith("gantrain."):
        raise GantrainError(f"_target_ {target!r} is not allowed: only gantrain.* classes may be instantiated from a config")
    module_name, _, attr = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise GantrainError(f"_target_ {target!r} cannot be imported ({exc}); check the spelling in your config") from None


# Keys removed because they had no effect, per group: dropped where the schema no longer declares them, so the
# configs stored in older checkpoints still validate on resume (e.g. data.download of the offline datasets).
RETIRED_KEYS: dict[str, set[str]] = {"data": {"download"}}
# Keys added later, per group, with the value that reproduces what runs did before they existed: filled in where
# the schema declares them and a config (an older checkpoint's) lacks them, so those runs resume as they trained.
ADDED_KEYS: dict[str, dict[str, Any]] = {"model": {"lambda_ms": 0.0, "g_upsample": "transposed"}}
# Keys given a new name, per group: the old name fails with one line naming the new one.
RENAMED_KEYS: dict[str, dict[str, str]] = {"model": {"n_critic": "d_steps"}}


def check_renamed(dotted: str, value: Any) -> None:
    """One line for a key that was given a new name (on the command line, in a user config or an old checkpoint)."""
    group, _, key = dotted.partition(".")
    new = RENAMED_KEYS.get(group, {}).get(key)
    if new is not None:
        raise GantrainError(f"{dotted} was renamed to {group}.{new}; write {group}.{new}={value}")


def _validate_node(node: Any, schema: type, where: str) -> DictConfig:
    if not isinstance(node, DictConfig):
        raise GantrainError(f"config group {where!r} must be a mapping, got {type(node).__name__}")
    data = OmegaConf.to_container(node, resolve=True)
    target = data.pop("_target_", None)
    declared = {f.name for f in fields(schema)}
    for key in RETIRED_KEYS.get(where, set()) - declared:
        data.pop(key, None)
    for key, value in ADDED_KEYS.get(where, {}).items():
        if key in declared:
            data.setdefault(key, value)
    for key, value in data.items():
        check_renamed(f"{where}.{key}", value)
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
    missing = sorted(OmegaConf.missing_keys(merged))
    if missing:  # a family's Config declares its keys without values: its YAML is where they are set
        raise GantrainError(f"config group {where} sets no value for {', '.join(f'{where}.{k}' for k in missing)}; "
                            f"add it to the group's YAML (configs/{where}/) or set it on the command line")
    if target is not None:
        with_target = OmegaConf.create({"_target_": target})
        merged = OmegaConf.merge(with_target, merged)
    return merged


def group_config(group: str, option: str, **overrides: Any) -> DictConfig:
    """configs/<group>/<option>.yaml on its own (no recipe, preset or defaults list) with `overrides`, validated as
    in a run: what a family's constructor receives when a test or benchmark builds it without composing a run."""
    from gantrain.config.paths import config_dir

    node = OmegaConf.load(config_dir() / group / f"{option}.yaml")
    node.pop("defaults", None)
    schema = FIXED_GROUPS[group] if group in FIXED_GROUPS else resolve_target(node._target_).Config
    node = _validate_node(OmegaConf.merge(node, overrides), schema, group)
    check_allowed(OmegaConf.create({group: node}))
    return node


def validate_config(cfg: DictConfig) -> DictConfig:
    """Return a copy of `cfg` with every group checked against its schema (the values all come from the YAML)."""
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
    check_allowed(cfg)
    if cfg.trainer.max_steps is None and cfg.trainer.max_epochs is None:
        raise GantrainError("set trainer.max_steps or trainer.max_epochs so the run knows when to stop")
    return cfg
