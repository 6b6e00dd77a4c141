"""The run's file listing: a resumed run and `gantrain-eval RUN` see the files the run first listed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import data_cfg, run_cli
from gantrain.data.image_folder import ImageFolder
from gantrain.data.listing import LISTING_FILE, FolderListing
from gantrain.data.unpaired import UnpairedFolder
from gantrain.errors import GantrainError
from test_reproducibility import FAMILIES, assert_same_checkpoint, train


def _images(folder: Path, names: range, size: int = 20, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in names:
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")


def test_listing_is_stored_once_and_reused_whatever_is_added(tmp_path):
    _images(tmp_path / "imgs", range(10))
    store = tmp_path / "run" / LISTING_FILE
    store.parent.mkdir()
    first = FolderListing(store).images(tmp_path / "imgs")
    assert len(first) == 10 and json.loads(store.read_text())["version"] == 1
    _images(tmp_path / "imgs", range(10, 14), seed=1)
    assert FolderListing(store).images(tmp_path / "imgs") == first  # the run's files, not the folder's new ones
    assert len(FolderListing().images(tmp_path / "imgs")) == 14  # no run: the folder as it is now
    FolderListing(tmp_path / "other.json", write=False).images(tmp_path / "imgs")
    assert not (tmp_path / "other.json").exists()  # read-only listings (DDP ranks > 0, gantrain-eval) write nothing


def test_unreadable_listing_is_one_line_naming_the_fix(tmp_path):
    store = tmp_path / LISTING_FILE
    store.write_text("{not json")
    with pytest.raises(GantrainError, match="delete it to list the data folders again"):
        FolderListing(store)
    store.write_text(json.dumps({"version": 99, "folders": {}}))
    with pytest.raises(GantrainError, match="version 99"):
        FolderListing(store)


@pytest.mark.parametrize("cache", ["device", "stream"])
def test_a_listed_file_gone_since_is_skipped_as_unreadable(tmp_path, cache):
    _images(tmp_path / "trainA", range(8))
    _images(tmp_path / "trainB", range(8), seed=1)
    store = tmp_path / LISTING_FILE
    cfg = data_cfg("unpaired_folder", root=str(tmp_path), load_size=20, crop_size=16, cache=cache)
    UnpairedFolder(cfg, listing=FolderListing(store)).split("train")
    (tmp_path / "trainA" / "003.png").unlink()
    assert len(UnpairedFolder(cfg, listing=FolderListing(store)).split("train").a) == 7


def test_image_folder_split_does_not_move_when_files_are_added(tmp_path):
    _images(tmp_path / "imgs", range(30))
    store = tmp_path / LISTING_FILE
    cfg = data_cfg("image_folder", root=str(tmp_path / "imgs"), image_size=16)
    before = ImageFolder(cfg, listing=FolderListing(store))._files
    _images(tmp_path / "imgs", range(30, 45), seed=1)
    assert ImageFolder(cfg, listing=FolderListing(store))._files == before
    assert ImageFolder(cfg)._files != before  # without the run's listing the split would move


def test_resume_after_files_were_added_trains_as_the_straight_run(tmp_path):
    """N straight = N/2 + (new files land in the folder) + resume + N/2, weight for weight."""
    _images(tmp_path / "trainA", range(6), size=36)
    _images(tmp_path / "trainB", range(6), size=36, seed=1)
    run = [o for o in FAMILIES["cyclegan"] if not o.startswith("data=")]
    run += ["data=unpaired_folder", f"data.root={tmp_path}", "data.load_size=36", "data.crop_size=32",
            "data.batch_size=2", "trainer.max_steps=4"]
    train(run, tmp_path / "straight")
    shutil.copytree(tmp_path / "straight", tmp_path / "halves")
    for name in ("last.pt", "step_0000004.pt"):
        (tmp_path / "halves" / "checkpoints" / name).unlink()
    _images(tmp_path / "trainA", range(6, 12), size=36, seed=2)  # would change the epoch length and every index
    train(run, tmp_path / "halves", resume=True)
    assert_same_checkpoint(tmp_path / "straight", tmp_path / "halves")
    assert (tmp_path / "halves" / LISTING_FILE).is_file()


def test_gantrain_eval_scores_the_run_on_its_own_listing(tmp_path):
    for side, seed in (("A", 0), ("B", 1)):
        _images(tmp_path / f"train{side}", range(6), size=36, seed=seed)
        _images(tmp_path / f"test{side}", range(4), size=36, seed=seed + 2)
    run = tmp_path / "run"
    proc = run_cli(["gantrain", "model=cyclegan", "data=unpaired_folder", f"data.root={tmp_path}", "data.load_size=36",
                    "data.crop_size=32", "model.netG=resnet_2blocks", "model.ngf=4", "model.ndf=4", "trainer.max_steps=2",
                    "trainer.max_epochs=null", "trainer.device=cpu", "trainer.progress_bar=false", "logger.tensorboard=false",
                    "eval.metrics=[]", "eval.data_metrics=[]", f"hydra.run.dir={run}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    listed = json.loads((run / LISTING_FILE).read_text())["folders"]
    assert sorted(len(v) for v in listed.values()) == [4, 4, 6, 6]  # train and test (sample grids) folders
    _images(tmp_path / "trainA", range(6, 9), size=36, seed=5)
    (tmp_path / "testA" / "001.png").unlink()
    proc = run_cli(["gantrain.cli.eval", str(run), "--metrics", "translation", "--device", "cpu", "--no-write"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "6 file(s) from the run's listing" in proc.stderr  # trainA as the run listed it, not the 9 there now
    assert "skipped 1 unreadable image(s) of 4" in proc.stderr  # testA/001.png, listed by the run, gone since
    assert json.loads(proc.stdout)["metrics"]
