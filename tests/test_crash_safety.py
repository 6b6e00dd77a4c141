"""Crash safety of checkpoints: a write that fails half way keeps the previous `last.pt`, and `last.pt` is a
copy where hard links are not supported."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from conftest import TINY, compose_cfg
from gantrain import io, runs
from gantrain.config.schema import validate_config
from gantrain.errors import GantrainError
from gantrain.trainer.trainer import Trainer

RUN = TINY + ["trainer.num_threads=1", "data.batch_size=8", "data.image_size=16", "model.ngf=4", "model.ndf=4",
              "model.z_dim=4", "trainer.ckpt_every=2"]


def trainer_for(steps: int, run_dir, resume: bool = False) -> Trainer:
    trainer = Trainer(validate_config(compose_cfg(RUN + [f"trainer.max_steps={steps}"])), run_dir)
    trainer.setup(runs.load_newest_valid(run_dir)[1] if resume else None)
    return trainer


def test_disk_full_half_way_keeps_last_checkpoint(tmp_path, monkeypatch):
    trainer_for(2, tmp_path).fit()
    last = tmp_path / "checkpoints" / "last.pt"
    before = last.read_bytes()
    real_save = torch.save

    def save_then_fill_the_disk(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # bytes reach the temporary file, then the disk fills up
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    trainer = trainer_for(4, tmp_path, resume=True)
    monkeypatch.setattr(io.torch, "save", save_then_fill_the_disk)
    with pytest.raises(GantrainError) as info:
        trainer.fit()
    message = str(info.value)
    assert "\n" not in message and "No space left on device" in message and "intact" in message
    assert last.read_bytes() == before and runs.load_checkpoint(last)["step"] == 2
    assert not list((tmp_path / "checkpoints").glob(".*tmp")), "no temporary file is left behind"


def test_copy_fallback_where_hard_links_fail(tmp_path, monkeypatch):
    def no_links(src, dst, *args, **kwargs):
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(io.os, "link", no_links)
    trainer_for(4, tmp_path).fit()
    folder = tmp_path / "checkpoints"
    last, snapshot = folder / "last.pt", folder / runs.snapshot_name(4)
    assert last.stat().st_nlink == 1 and not last.samefile(snapshot), "a copy, not a link"
    assert last.read_bytes() == snapshot.read_bytes()
    assert runs.load_checkpoint(last)["step"] == 4
    assert not list(folder.glob(".*tmp"))
