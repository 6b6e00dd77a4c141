"""The keyed on-disk cache (`gantrain.io.load_or_build`) and `runs.load_nets`' one-line mismatch errors."""

from __future__ import annotations

import logging

import pytest
import torch

from gantrain.errors import GantrainError
from gantrain.io import cache_folder, cache_path, key_digest, load_or_build
from gantrain.runs import load_nets


def test_cache_names_stay_what_existing_user_caches_are_called(tmp_path):
    key = {"dataset": "digits", "version": 1, "n": [1, 2]}
    assert key_digest(key) == "c49ad6baa188ee8b"  # sha256 of the sorted JSON, as every cache named it before
    assert key_digest(dict(reversed(key.items()))) == key_digest(key)
    assert cache_path(tmp_path, "digits", key) == tmp_path / "digits-c49ad6baa188ee8b.pt"
    assert cache_folder(None, "reference").parts[-3:] == (".cache", "gantrain", "reference")
    assert cache_folder(str(tmp_path), "reference") == tmp_path


def test_cache_builds_once_then_reads_the_file(tmp_path):
    path, calls = tmp_path / "c" / "x-1.pt", []

    def build():
        calls.append(1)
        return {"value": torch.arange(3)}

    first = load_or_build(path, build, lambda blob: blob["value"])
    second = load_or_build(path, build, lambda blob: blob["value"])
    assert calls == [1] and torch.equal(first, second) and path.is_file()
    assert not list(path.parent.glob(".*tmp")), "written through a temporary file and a rename"


def test_cache_rebuilds_a_broken_file_with_a_warning(tmp_path, caplog):
    path = tmp_path / "x-1.pt"
    path.write_bytes(b"truncated")
    with caplog.at_level(logging.WARNING, logger="gantrain.io"):
        assert load_or_build(path, lambda: {"v": 1}, lambda blob: blob["v"]) == 1
    assert "unreadable" in caplog.text and str(path) in caplog.text
    assert torch.load(path, weights_only=True) == {"v": 1}
    # a blob that loads but does not fit the reader (an older layout) is rebuilt the same way
    assert load_or_build(path, lambda: {"w": 2}, lambda blob: blob["w"]) == 2


class _Family:
    def __init__(self, width: int) -> None:
        self.cfg = type("Cfg", (), {"name": "gan"})()
        self.nets = torch.nn.ModuleDict({"G": torch.nn.Linear(2, width)})


def test_load_nets_names_the_mismatch_in_one_line():
    ckpt = {"model_name": "gan", "nets": {"G": _Family(3).nets["G"].state_dict()}}
    load_nets(_Family(3), ckpt)
    with pytest.raises(GantrainError, match="this run is model=gan; pass model=dcgan") as info:
        load_nets(_Family(3), {**ckpt, "model_name": "dcgan"})
    assert "\n" not in str(info.value)
    with pytest.raises(GantrainError, match=r"network G does not match the checkpoint \(size mismatch for weight") as info:
        load_nets(_Family(4), ckpt)  # same keys, another width: torch raises, the user gets one line
    assert "\n" not in str(info.value)
    with pytest.raises(GantrainError, match="has no network 'G'"):
        load_nets(_Family(3), {**ckpt, "nets": {}})
