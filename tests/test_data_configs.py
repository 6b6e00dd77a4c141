"""Data YAMLs: the named datasets inherit a base YAML through Hydra defaults yet compose to exactly what they
composed to when each restated every key (tests/fixtures/composed_data_configs.json, generated from those
YAMLs; since then only `eval.metrics` moved, from `[classifier]` to null = the family's `default_metrics`), and
the YAML is the only source of data defaults (the Config dataclasses declare fields and types)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from omegaconf import MISSING, OmegaConf

from gantrain.config.paths import config_groups
from gantrain.config.schema import resolve_target, validate_config
from gantrain.errors import GantrainError

from conftest import compose_cfg
from test_config import compose_all

EXPECTED = json.loads((Path(__file__).parent / "fixtures" / "composed_data_configs.json").read_text())
DATA = config_groups()["data"]
# classes that moved module since the fixture was written: the composed `_target_` names the new home
MOVED = {f"gantrain.data.{old}.{cls}": f"gantrain.data.digit_domains.{cls}"
         for old, cls in (("unpaired", "Digits2Negative"), ("unpaired", "Digits2Edges"), ("aligned", "Edges2Digits"))}

def test_every_data_yaml_composes_to_the_values_it_had_before_inheriting():
    assert sorted(EXPECTED) == DATA
    for name, cfg in zip(DATA, compose_all([[f"data={n}"] for n in DATA])):
        got = {g: OmegaConf.to_container(cfg[g], resolve=False) for g in ("data", "eval")}
        want = json.loads(json.dumps(EXPECTED[name]))
        want["data"]["_target_"] = MOVED.get(want["data"]["_target_"], want["data"]["_target_"])
        if name == "shapes":  # the default model's preset/dcgan_shapes scores it with FID/KID (no class labels)
            want["eval"]["metrics"] = ["fid", "kid"]
        assert got == want, name

def test_named_datasets_inherit_their_base_yaml():
    text = {n: (Path(__file__).parents[1] / "configs" / "data" / f"{n}.yaml").read_text() for n in DATA}
    for name in ("horse2zebra", "apple2orange", "mini", "facades", "maps"):
        assert "  - unpaired_folder\n" in text[name] and "load_size" not in text[name]
    for name in ("edges2shoes", "edges2handbags", "night2day", "pix2pix_facades", "pix2pix_maps"):
        assert "  - aligned_folder\n" in text[name] and "load_size" not in text[name]

def test_every_data_config_field_has_no_default_the_yaml_is_the_only_source():
    for name, cfg in zip(DATA, compose_all([[f"data={n}"] for n in DATA])):
        schema = resolve_target(cfg.data._target_).Config
        for f in dataclasses.fields(schema):
            assert f.default is MISSING and f.default_factory is dataclasses.MISSING, f"{schema.__qualname__}.{f.name}"

def test_a_key_missing_from_a_data_yaml_is_one_line_naming_it():
    cfg = compose_cfg(["data=digits"])
    OmegaConf.set_struct(cfg, False)
    del cfg.data["image_size"]
    with pytest.raises(GantrainError, match=r"config group data sets no value for data\.image_size"):
        validate_config(cfg)
