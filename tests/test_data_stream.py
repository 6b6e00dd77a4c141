"""data.cache: streamed batches equal in-memory ones, resume exactly mid-epoch with workers, skip corrupt files,
shard across DDP ranks; `auto` picks against its budget; batch building draws nothing on the host."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gantrain.data import stream as stream_mod
from gantrain.data.aligned import AlignedFolder
from gantrain.data.captioned_sets import CaptionedFolder
from gantrain.data.captions import CaptionedImages
from gantrain.data.image_folder import ImageFolder
from gantrain.data.augment import random_crop
from gantrain.data.keys import LEFT, TOP, draw
from gantrain.data.loader import make_batch_stream
from gantrain.data.unpaired import UnpairedFolder
from gantrain.errors import GantrainError

from conftest import data_cfg

CPU = torch.device("cpu")


def _noise(folder: Path, n: int, size: tuple[int, int], seed: int, suffix: str = ".jpg") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        arr = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
        paths.append(folder / f"{i:03d}{suffix}")
        Image.fromarray(arr).save(paths[-1])
    return paths


def _epoch(data, cache: str, workers: int = 0, epoch: int = 0, start: int = 0, **kw) -> list[dict[str, torch.Tensor]]:
    s = make_batch_stream(data.split("train"), batch_size=3, seed=7, device=CPU, num_workers=workers, cache=cache, **kw)
    return list(s.epoch(epoch, start))


def _same(xs: list[dict], ys: list[dict]) -> None:
    assert len(xs) == len(ys)
    for x, y in zip(xs, ys):
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), k


def _unpaired(root: Path, cache: str) -> UnpairedFolder:
    cfg = data_cfg("unpaired_folder", root=str(root), load_size=20, crop_size=16, cache=cache)
    return UnpairedFolder(cfg)


def test_stream_equals_in_memory_resumes_mid_epoch_with_workers_and_skips_corrupt_files(tmp_path, caplog):
    _noise(tmp_path / "trainA", 13, (24, 24), 0)
    _noise(tmp_path / "trainB", 8, (24, 24), 1, ".png")
    (tmp_path / "trainA" / "005.jpg").write_bytes(b"not an image at all")  # replaces a good file: 12 readable
    caplog.set_level(logging.WARNING)
    memory, streamed = _unpaired(tmp_path, "device"), _unpaired(tmp_path, "stream")
    assert len(memory.split("train").a) == len(streamed.split("train").a) == 12
    assert "skipped 1 unreadable image(s) of 13 (not an image header)" in caplog.text
    whole = _epoch(memory, "device")
    assert len(whole) == 4 and whole[0]["A"].shape == (3, 3, 16, 16)
    s = make_batch_stream(streamed.split("train"), batch_size=3, seed=7, device=CPU, num_workers=2, cache="stream")
    _same(whole, list(s.epoch(0)))
    _same(whole[2:], list(s.epoch(0, 2)))  # resume at batch 2 of epoch 0, the same persistent workers
    next_epoch = _epoch(memory, "device", epoch=1)
    _same(next_epoch, list(s.epoch(1)))
    assert not torch.equal(whole[0]["A"], next_epoch[0]["A"])
    _same(whole, _epoch(memory, "host"))  # host on a CPU machine is the same gathers


def test_truncated_file_is_replaced_by_the_next_and_nothing_else_changes(tmp_path):
    for root in (tmp_path / "x", tmp_path / "y"):
        _noise(root / "train", 8, (40, 20), 3)  # side-by-side A|B, 20x20 halves
    good = (tmp_path / "x" / "train" / "004.jpg").read_bytes()
    (tmp_path / "x" / "train" / "003.jpg").write_bytes(good[: len(good) // 2])  # a valid header, truncated
    shutil.copy(tmp_path / "y" / "train" / "004.jpg", tmp_path / "y" / "train" / "003.jpg")

    def aligned(root: Path) -> AlignedFolder:
        return AlignedFolder(data_cfg("aligned_folder", root=str(root), load_size=20, crop_size=16, cache="stream"))

    x, y = aligned(tmp_path / "x"), aligned(tmp_path / "y")
    sx = make_batch_stream(x.split("train"), batch_size=2, seed=1, device=CPU, num_workers=2, cache="stream")
    got = list(sx.epoch(0))
    _same(got, list(make_batch_stream(y.split("train"), batch_size=2, seed=1, device=CPU, cache="stream").epoch(0)))
    assert sx.unreadable == 1 and got[0]["A"].shape == (2, 3, 16, 16)


def test_image_folder_stream_matches_memory_with_labels(tmp_path):
    _noise(tmp_path / "cats", 5, (20, 20), 4)
    _noise(tmp_path / "dogs", 6, (20, 20), 5, ".png")

    def folder(cache: str) -> ImageFolder:
        return ImageFolder(data_cfg("image_folder", root=str(tmp_path), image_size=16, test_fraction=0.0, cache=cache))

    memory, streamed = folder("device"), folder("stream")
    assert memory.info.class_counts == streamed.info.class_counts == [5, 6]
    _same(_epoch(memory, "device"), _epoch(streamed, "stream"))


def test_auto_picks_against_the_budget(tmp_path, caplog, monkeypatch):
    _noise(tmp_path / "imgs", 10, (16, 16), 6)
    need = 10 * 3 * 16 * 16

    def mode(budget):
        cfg = data_cfg("image_folder", root=str(tmp_path / "imgs"), image_size=16, test_fraction=0.0, cache_budget_gb=budget)
        return ImageFolder(cfg).cache_mode

    caplog.set_level(logging.INFO)
    assert mode(need / 2**30) == "device"
    assert mode((need - 1) / 2**30) == "stream"
    assert "data.cache=auto chose stream" in caplog.text and "over the budget" in caplog.text
    # a GPU with little free memory and a roomy host: host; neither: stream (no CUDA call beyond mem_get_info)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (2 * need, 10 * need))
    monkeypatch.setattr(stream_mod, "host_available", lambda: 4 * need)
    cuda = torch.device("cuda", 0)
    assert stream_mod.resolve_cache("auto", need // 2, cuda, None, "t") == "device"  # 40% of the free 2 x need
    assert stream_mod.resolve_cache("auto", need, cuda, None, "t") == "host"  # 50% of host
    assert stream_mod.resolve_cache("auto", 3 * need, cuda, None, "t") == "stream"
    with pytest.raises(GantrainError, match="data.cache=disk is not valid"):
        stream_mod.resolve_cache("disk", need, CPU, None, "t")


def test_ddp_ranks_stream_disjoint_shards_equal_to_in_memory(tmp_path):
    _noise(tmp_path / "imgs", 12, (16, 16), 8)
    dump = tmp_path / "dump"
    dump.mkdir()
    worker = Path(__file__).with_name("ddp_stream_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(worker),
           str(tmp_path / "imgs"), str(dump)]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    memory = ImageFolder(data_cfg("image_folder", root=str(tmp_path / "imgs"), image_size=16, labels=False))
    shards = []
    for rank in (0, 1):
        got = torch.load(dump / f"rank{rank}.pt")
        want = make_batch_stream(memory.split("train"), batch_size=2, seed=5, device=CPU, rank=rank, world=2).epoch(0)
        _same([{"image": g} for g in got], list(want))
        shards.append({bytes(x.numpy()) for b in got for x in b})
    assert len(shards[0]) == len(shards[1]) == 4 and not shards[0] & shards[1]  # 10 train images: 5 per rank, 2 batches


def test_key_draws_are_uniform_and_caption_mismatches_are_vectorised():
    keys = torch.arange(20000, dtype=torch.long) * 0x9E3779B97F4A7 % (2**63)
    counts = torch.bincount(draw(keys, 3, 10), minlength=10).float()
    assert counts.min() > 1800 and counts.max() < 2200
    assert not torch.equal(draw(keys, 1, 10), draw(keys, 2, 10))
    images = torch.zeros(6, 3, 4, 4, dtype=torch.uint8)
    content = torch.tensor([0, 0, 0, 0, 0, 1])  # only image 5 mismatches images 0-4
    split = CaptionedImages(images, torch.zeros(6, 2, 3, dtype=torch.long), content)
    idx = torch.zeros(64, dtype=torch.long)
    wrong = split.mismatching(idx, keys[:64])
    assert (content[wrong] != 0).float().mean() > 0.9  # 16 tries at 1/6 each: P(all fail) ~ 5%


def test_random_crop_is_the_window_at_the_drawn_offsets():
    x = torch.randint(0, 255, (5, 4, 30, 40), dtype=torch.uint8)
    keys = torch.arange(5) * 977
    y = random_crop(x, 16, keys)
    top, left = draw(keys, TOP, 15), draw(keys, LEFT, 25)
    for i in range(5):
        assert torch.equal(y[i], x[i, :, top[i] : top[i] + 16, left[i] : left[i] + 16])


def test_captioned_folder_stream_matches_memory(tmp_path):
    for k, cls in enumerate(("red", "blue")):
        for p in _noise(tmp_path / "imgs" / cls, 4, (20, 20), 10 + k):
            p.with_suffix(".txt").write_text(f"a {cls} thing\nsomething {cls}\n")

    def folder(cache: str) -> CaptionedFolder:
        cfg = data_cfg("captioned_folder", root=str(tmp_path / "imgs"), image_size=16, test_classes=0, cache=cache,
                                     cache_dir=str(tmp_path / f"c-{cache}"))
        return CaptionedFolder(cfg)

    _same(_epoch(folder("device"), "device"), _epoch(folder("stream"), "stream"))
