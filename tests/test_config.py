"""Config contract: every shipped config composes and validates, every constrained key is range-checked with one
line, and declared keys have an effect (logger.hparams)."""

from __future__ import annotations

import dataclasses

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import MISSING, OmegaConf

from gantrain.config.paths import config_dir, config_groups
from gantrain.config.schema import ALLOWED, resolve_target, validate_config
from gantrain.errors import GantrainError

from conftest import compose_cfg

GROUPS = config_groups()
# The README's runnable combinations: every family with the dataset it trains on out of the box, and every preset.
PRESETS = [p.split("_", 1) if not p.startswith("gan_cls") else ["gan_cls", p[len("gan_cls_"):]] for p in GROUPS["preset"]]
README_RUNS = sorted({("dcgan", "digits"), ("gan", "digits"), ("gan", "mnist"), ("cgan", "digits"), ("acgan", "digits"),
                      ("gan_cls", "shapes"), ("bigan", "digits"), ("cogan", "digits2negative"), ("latent_encoder", "digits"),
                      ("pix2pix", "edges2digits"), *[tuple(p) for p in PRESETS]})


def compose_all(override_lists: list[list[str]]) -> list:
    """Compose many configs under one Hydra initialisation (one per config is far slower)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return [compose(config_name="train", overrides=o) for o in override_lists]


@pytest.fixture(scope="module")
def every_config() -> dict[str, object]:
    """Every config file of every group, each composed into a full config and validated: each model with the
    default data, each data with the default model, each option of the other groups, each recipe through its model."""
    runs = [[f"{g}={o}"] for g in ("model", "data", "optim", "trainer", "logger", "eval", "experiment", "debug",
                                    "hparams_search") for o in GROUPS[g]]
    runs += [[f"model={m}", f"data={d}"] for m, d in README_RUNS]  # presets and recipes come with these
    return {" ".join(o): validate_config(cfg) for o, cfg in zip(runs, compose_all(runs))}


def test_every_config_file_composes_and_validates(every_config):
    for group in ("model", "data"):
        for option in GROUPS[group]:
            assert every_config[f"{group}={option}"][group].name == option
    used = {f"{m}_{d}" for m, d in README_RUNS}
    assert set(GROUPS["preset"]) <= used and {r for r in GROUPS["recipe"]} <= {m for m, _ in README_RUNS}


@pytest.mark.parametrize("model,data", README_RUNS)
def test_readme_run_builds_its_model_and_data(model, data):
    """Composition plus the cheap part of instantiation: the model and data classes accept the validated config."""
    cfg = validate_config(compose_cfg([f"model={model}", f"data={data}"]))
    assert resolve_target(cfg.model._target_).Config and resolve_target(cfg.data._target_).Config
    if data in ("digits", "edges2digits", "digits2negative", "digits2edges"):  # in-memory and offline: build them
        from gantrain.runs import build_model

        source = resolve_target(cfg.data._target_)(cfg.data, seed=0)
        if model != "latent_encoder":  # needs a trained generator run
            assert build_model(cfg, source.info).nets


@pytest.mark.parametrize("override,message", [
    ("model.d_steps=0", "model.d_steps=0 is not valid; use a value >= 1"),
    ("trainer.log_every=0", "trainer.log_every=0 is not valid; use a value >= 1"),
    ("trainer.ema.every=0", "trainer.ema.every=0 is not valid; use a value >= 1"),
    ("trainer.ema.decay=1.0", "trainer.ema.decay=1.0 is not valid; use a value in (0, 1)"),
    ("trainer.keep_last=0", "trainer.keep_last=0 is not valid; use a value >= 1"),
    ("optim.lr=0", "optim.lr=0.0 is not valid; use a value > 0"),
    ("optim.betas=[0.5,1.5]", "optim.betas=[0.5, 1.5] is not valid; use a value in [0, 1)"),
    ("data.batch_size=0", "data.batch_size=0 is not valid; use a value >= 1"),
    ("model.z_dist=foo", "model.z_dist=foo is not valid; choose one of: normal, uniform"),
    ("model.norm_D=group", "model.norm_D=group is not valid; choose one of: batch, instance, layer, none"),
    ("eval.num_samples=0", "eval.num_samples=0 is not valid; use a value >= 1"),
])
def test_out_of_range_value_is_one_line_naming_key_and_fix(override, message):
    with pytest.raises(GantrainError) as err:
        validate_config(compose_cfg([override]))
    assert str(err.value) == message


def test_every_constrained_key_is_declared_by_some_schema(every_config):
    """A key in the table that no group declares would be a check that can never run."""
    declared: set[str] = set()
    for valid in every_config.values():
        for group in ("trainer", "optim", "logger", "eval", "model", "data"):
            flat = OmegaConf.to_container(valid[group])
            declared |= {f"{group}.{k}" for k in flat} | {f"{group}.ema.{k}" for k in flat.get("ema", {})}
    assert set(ALLOWED) <= declared, sorted(set(ALLOWED) - declared)


def test_cli_rejects_a_bad_value_before_training(tmp_path):
    from conftest import run_cli

    proc = run_cli(["gantrain", "model.z_dist=foo", "trainer.max_steps=1"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: model.z_dist=foo is not valid; choose one of: normal, uniform"


@pytest.mark.parametrize("hparams", [True, False])
def test_logger_hparams_decides_whether_the_hparams_session_is_written(tmp_path, hparams):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gantrain.trainer.run_logger import RunLogger

    logger = RunLogger(tmp_path, tensorboard=True, jsonl=False, hparams=hparams)
    logger.scalars(1, {"loss/D": 1.0})
    logger.hparams({"optim": {"lr": 2e-4}}, {"cls_fd": 3.0})
    logger.close()
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    try:
        content = acc.PluginTagToContent("hparams")
    except KeyError:  # the plugin never wrote anything
        content = {}
    assert ("_hparams_/session_start_info" in content) == hparams


def test_model_configs_declare_keys_without_defaults():
    """A family's YAML is the one place for its values (and their paper notes): its Config declares keys and types
    only, so a key the YAML lacks fails validation instead of silently taking a second, drifting default."""
    for option in GROUPS["model"]:
        schema = resolve_target(OmegaConf.load(config_dir() / "model" / f"{option}.yaml")._target_).Config
        defaults = [f.name for f in dataclasses.fields(schema)
                    if f.default != MISSING or f.default_factory is not dataclasses.MISSING]
        assert not defaults, f"{schema.__qualname__} has defaults for {defaults}"


def test_a_model_key_the_yaml_lacks_is_one_line():
    cfg = OmegaConf.to_container(compose_cfg(["model=cyclegan", "data=digits2negative"]))
    del cfg["model"]["pool_size"]
    with pytest.raises(GantrainError) as err:
        validate_config(OmegaConf.create(cfg))
    assert str(err.value) == ("config group model sets no value for model.pool_size; add it to the group's YAML "
                              "(configs/model/) or set it on the command line")


def test_renamed_critic_steps_key_is_one_line_naming_the_new_key(tmp_path):
    """dualgan's n_critic became d_steps (the one critic-step name): an old config or a command line says so in one line."""
    import subprocess
    import sys

    old = OmegaConf.to_container(compose_cfg(["model=dualgan", "data=digits2negative"]))
    old["model"]["n_critic"] = old["model"].pop("d_steps")
    old = OmegaConf.create(old)
    with pytest.raises(GantrainError) as err:
        validate_config(old)
    assert str(err.value) == "model.n_critic was renamed to model.d_steps; write model.d_steps=3"
    run = subprocess.run([sys.executable, "-m", "gantrain", "model=dualgan", "model.n_critic=2"], capture_output=True, text=True)
    assert run.returncode != 0 and "model.n_critic was renamed to model.d_steps; write model.d_steps=2" in run.stderr


def test_retired_download_key_is_dropped_from_an_old_config_but_not_accepted_on_the_command_line():
    """data.download did nothing for the offline datasets and was removed; older checkpoints still validate."""
    old = compose_cfg([])
    OmegaConf.set_struct(old, False)
    old.data.download = False
    assert "download" not in validate_config(old).data
    with pytest.raises(Exception, match="download"):
        compose_cfg(["data=image_folder", "data.download=true"])


def test_a_key_added_later_takes_the_old_behaviour_in_an_older_config():
    """gan_cls checkpoints written before model.lambda_ms / model.g_upsample existed resume without the mode-seeking
    term and with transposed convs, as they trained."""
    old = compose_cfg(["model=gan_cls", "data=shapes"])
    OmegaConf.set_struct(old, False)
    del old.model["lambda_ms"], old.model["g_upsample"]
    assert validate_config(old).model.lambda_ms == 0.0
    assert validate_config(old).model.g_upsample == "transposed"
    assert "lambda_ms" not in validate_config(compose_cfg(["model=dcgan"])).model  # only where the family declares it
