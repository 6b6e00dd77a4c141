"""`gantrain [overrides]`: compose the config with Hydra, validate it, train, and return the final metrics."""

from __future__ import annotations

import logging
import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from gantrain.cli.common import fail
from gantrain.config.paths import config_dir, config_groups
from gantrain.config.schema import check_renamed, validate_config
from gantrain.errors import GantrainError

log = logging.getLogger("gantrain")


def _override_pairs(argv: list[str]) -> list[tuple[str, str]]:
    return [tuple(a.split("=", 1)) for a in argv if "=" in a and not a.startswith("-")]


def precheck(argv: list[str]) -> list[str]:
    """Catch unknown group choices before Hydra does (one line, with the choices), and pick the run
    directory for `resume=` and for torchrun ranks. Returns the (possibly extended) argument list."""
    groups = config_groups()
    pairs = _override_pairs(argv)
    user_searchpath = any(k.lstrip("+") == "hydra.searchpath" for k, _ in pairs)
    for key, value in pairs:
        group = key.lstrip("+~")
        try:
            check_renamed(group, value)
        except GantrainError as exc:
            fail(str(exc))
        if group in groups and not user_searchpath and value not in ("null", ""):
            if "(" in value:  # sweep functions such as glob(*) or choice(a,b)
                continue
            for choice in value.split(","):
                if choice not in groups[group]:
                    fail(f"unknown {group} {choice!r}; choose one of: {', '.join(groups[group])}")
    keys = {k.lstrip("+") for k, _ in pairs}
    _check_extras(dict(pairs))
    multirun = "-m" in argv or "--multirun" in argv
    if not multirun and not user_searchpath:
        _check_composes([a for a in argv if "=" in a and not a.startswith("-") and not a.lstrip("+~").startswith("hydra")])
    resume = dict(pairs).get("resume")
    if resume and resume != "null" and "hydra.run.dir" not in keys and not multirun:
        from gantrain.runs import run_dir_of

        path = Path(resume).expanduser()
        if path.is_file():
            argv = argv + [f"hydra.run.dir={run_dir_of(path.resolve())}"]
        elif path.is_dir():
            run = path.parent if path.name == "checkpoints" else path
            argv = argv + [f"hydra.run.dir={run.resolve()}"]
        else:
            fail(f"resume={resume} does not exist; pass a checkpoint file or a run directory")
        keys.add("hydra.run.dir")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not multirun:
        argv = _share_run_dir(argv, keys)
    # Hydra's parser wants flags (-m, --cfg job, ...) before the overrides; accept them anywhere.
    flags, rest, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-") and "=" not in arg:
            flags.append(arg)
            if arg in ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                       "--config-dir", "-cd", "--info", "-i", "--experimental-rerun") and i + 1 < len(argv):
                flags.append(argv[i + 1])
                i += 1
        else:
            rest.append(arg)
        i += 1
    return flags + rest


def _check_extras(pairs: dict[str, str]) -> None:
    """Optional sweepers and launchers are plugins: say which extra to install instead of Hydra's 'not found'."""
    import importlib.util

    needs = {("hparams_search", "optuna"): ("hydra_plugins.hydra_optuna_sweeper", "optuna"),
             ("hydra/launcher", "slurm"): ("hydra_plugins.hydra_submitit_launcher", "slurm"),
             ("hydra/launcher", "submitit_slurm"): ("hydra_plugins.hydra_submitit_launcher", "slurm"),
             ("hydra/launcher", "submitit_local"): ("hydra_plugins.hydra_submitit_launcher", "slurm")}
    for (key, value), (module, extra) in needs.items():
        if pairs.get(key) != value:
            continue
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # no hydra_plugins namespace at all
            found = False
        if not found:
            fail(f"{key}={value} needs an optional extra; install it with: pip install 'gantrain[{extra}]'")


def _check_composes(overrides: list[str]) -> None:
    """Compose once up front so a misspelt key or bad value is one line, not Hydra's multi-line report."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            compose(config_name="train", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        cause = str(exc.__cause__ or "").strip().splitlines()
        if cause and "not in struct" in cause[0]:
            message += " There is no such config key: check the spelling (a new key needs +key=value)."
        elif cause:
            message += f" ({cause[0]})"
        fail(message)
    finally:
        GlobalHydra.instance().clear()


def _share_run_dir(argv: list[str], keys: set[str]) -> list[str]:
    """Under torchrun every rank would resolve its own `${now:}`: rank 0 decides and broadcasts one dir."""
    from gantrain.trainer.distributed import DistEnv

    env = DistEnv.from_env()
    if "hydra.run.dir" not in keys:
        import torch.distributed as dist

        stamp = [datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")]
        dist.broadcast_object_list(stamp, src=0)
        argv = argv + [f"hydra.run.dir=runs/${{run_name}}/{stamp[0]}"]
    if not env.is_main:
        argv = argv + ["hydra.output_subdir=null", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    return argv


def effective_config(cfg: DictConfig) -> tuple[DictConfig, dict[str, Any] | None]:
    """The config to train with and the checkpoint to resume from.

    On resume the checkpoint's own config is the base, so `gantrain resume=RUN` needs no other overrides;
    keys given on the command line (e.g. a longer `trainer.max_steps`) are applied on top.
    """
    if not cfg.get("resume"):
        return validate_config(cfg), None
    from gantrain.runs import load_checkpoint, load_newest_valid
    from gantrain.trainer.distributed import DistEnv

    env = DistEnv.from_env()
    # every rank resumes from the checkpoint rank 0 chose (a newer file may appear or break in between)
    chosen = str(load_newest_valid(Path(cfg.resume).expanduser())[0]) if env.is_main else None
    path = Path(env.broadcast_object(chosen))
    ckpt = load_checkpoint(path)
    base = OmegaConf.create(ckpt["config"])
    groups = config_groups()
    try:
        overrides = HydraConfig.get().overrides.task
    except ValueError:
        overrides = []
    for key, value in _override_pairs(list(overrides)):
        key = key.lstrip("+")
        if key in ("resume",) or key.startswith("hydra") or key.startswith("~"):
            continue
        if key in groups:
            ckpt_choice = OmegaConf.select(base, f"{key}.name")
            if ckpt_choice is not None and value != ckpt_choice:
                raise GantrainError(
                    f"the checkpoint {path} is from {key}={ckpt_choice}, not {key}={value}; drop the {key}= override "
                    f"to resume it, or start a new run without resume"
                )
            continue
        OmegaConf.update(base, key, OmegaConf.select(cfg, key), force_add=False, merge=True)
    base.resume = str(path)
    log.info("resuming from %s (step %d)", path, ckpt["step"])
    return validate_config(base), ckpt


def run(cfg: DictConfig) -> dict[str, float]:
    """Train one run described by `cfg` in Hydra's output directory."""
    from gantrain.trainer.distributed import DistEnv
    from gantrain.trainer.trainer import Trainer

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    env = DistEnv.from_env()
    try:
        cfg, ckpt = effective_config(cfg)
        output_subdir = HydraConfig.get().output_subdir
        if output_subdir is not None and env.is_main:
            OmegaConf.save(cfg, run_dir / output_subdir / "config.yaml")
        trainer = Trainer(cfg, run_dir, env)
        trainer.setup(ckpt)
        metrics = trainer.fit()
    except BaseException:  # errors, interrupts, sys.exit: leave the process group without waiting for the others
        env.close(failed=True)
        raise
    env.close()
    return metrics


@hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
def train(cfg: DictConfig) -> float | None:
    from gantrain.trainer.signals import TrainingInterrupted

    try:
        metrics = run(cfg)
    except GantrainError as exc:
        fail(str(exc))
    except TrainingInterrupted as exc:
        run_dir = exc.path.parent.parent if exc.path.parent.name == "checkpoints" else exc.path
        print(f"{exc}\nresume with: gantrain resume={run_dir}", file=sys.stderr)
        sys.exit(128 + exc.signum if exc.signum != signal.SIGINT else 130)
    key = cfg.get("optimized_metric")
    if key:
        value = metrics.get(key.removeprefix("eval/"))
        if value is None:
            fail(f"optimized_metric={key} was not computed; add its metric to eval.metrics")
        return float(value)
    return None


def main() -> None:
    sys.argv = [sys.argv[0]] + precheck(sys.argv[1:])
    train()


if __name__ == "__main__":
    main()
