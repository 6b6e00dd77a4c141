"""Shared fixtures: tiny configs composed like the CLI composes them, outputs under tmp_path, no network."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two pytest workers on a 2-core machine: one thread each (and in the subprocesses they
    # start) instead of two threads each fighting over the same cores
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

from gantrain.config.paths import config_dir

TINY = [
    "trainer.max_steps=4",
    "trainer.max_epochs=null",
    "trainer.device=cpu",
    "trainer.log_every=2",
    "trainer.sample_every=0",
    "trainer.ckpt_every=2",
    "trainer.progress_bar=false",
    "logger.tensorboard=false",
    "eval.metrics=[]",
    "eval.at_end=false",
    "data.batch_size=16",
    "model.ngf=8",
    "model.ndf=8",
]


@pytest.fixture(autouse=True)
def _isolate(tmp_path, monkeypatch):
    """Every test gets its own cache dir and cwd; nothing reaches the network."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_PROXY", "*")
    yield
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory) -> str:
    """One cached digits classifier for the whole session (training it takes ~20 s)."""
    return str(tmp_path_factory.mktemp("classifiers"))


def compose_cfg(overrides: list[str] | None = None) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="train", overrides=overrides or [], return_hydra_config=False)


@functools.lru_cache(maxsize=None)
def _data_node(name: str) -> str:
    return OmegaConf.to_yaml(compose_cfg([f"data={name}"]).data)


def data_cfg(name: str, **values: Any) -> DictConfig:
    """The `data` group of `data=<name>` as composed from its YAML (the only source of its values), with `values` set."""
    return OmegaConf.merge(OmegaConf.create(_data_node(name)), values)


@pytest.fixture
def tiny_cfg():
    """A composed DCGAN-on-digits config that trains in a second."""
    return lambda extra=(): compose_cfg(TINY + list(extra))


def run_metrics(cfg: DictConfig) -> list[str]:
    """The metrics a composed config runs: `eval.metrics`, or its family's `default_metrics`, plus the data's."""
    from gantrain.config.schema import resolve_target
    from gantrain.metrics.evaluator import metric_names

    return metric_names(cfg, resolve_target(cfg.model._target_))


def run_cli(args: list[str], cwd: Path, timeout: int = 300, env: dict | None = None):
    """Run a console command as a user would (fresh interpreter), returning the CompletedProcess."""
    import subprocess
    import sys

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)
