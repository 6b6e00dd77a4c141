"""Unpaired data: the embedded digit domains, folders of images, and the interruption-safe downloader."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gantrain.data.download import download_and_extract
from gantrain.data.digit_domains import Digits2Edges, Digits2Negative
from gantrain.data.unpaired import UnpairedFolder
from gantrain.errors import GantrainError

from conftest import data_cfg


# ------------------------------------------------------------------ download
@pytest.fixture
def http_dir(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www; yields (folder, base url)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _png_bytes(color: int, size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (color, color, color)).save(buf, format="PNG")
    return buf.getvalue()


def make_zip(path: Path, top: str | None = "toy") -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for sub in ("trainA", "trainB", "testA", "testB"):
            for i in range(2):
                name = f"{sub}/{i}.png" if top is None else f"{top}/{sub}/{i}.png"
                zf.writestr(name, _png_bytes(40 * i + 10))


def test_download_zip_and_tar_gz(http_dir, tmp_path):
    www, url = http_dir
    make_zip(www / "toy.zip")
    digest = hashlib.sha256((www / "toy.zip").read_bytes()).hexdigest()
    out = download_and_extract(f"{url}/toy.zip", tmp_path / "data", sha256=digest, expect=("trainA", "testB"), progress=False)
    assert out == tmp_path / "data" / "toy" and len(list((out / "trainA").iterdir())) == 2
    assert not list((tmp_path / "data").glob("*.part")) and not (tmp_path / "data" / "toy.zip").exists()
    assert not list((tmp_path / "data").glob(".toy.*"))  # no temp folder left
    # a second call is offline: the folder is there
    assert download_and_extract("http://127.0.0.1:9/none.zip", tmp_path / "data", folder_name="toy") == out
    # a tar.gz whose members sit at the top level (no wrapping folder)
    with tarfile.open(www / "flat.tar.gz", "w:gz") as tf:
        for sub in ("trainA", "trainB"):
            data = _png_bytes(5)
            info = tarfile.TarInfo(f"{sub}/x.png")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    out = download_and_extract(f"{url}/flat.tar.gz", tmp_path / "data", expect=("trainA", "trainB"), progress=False)
    assert (out / "trainB" / "x.png").is_file() and out.name == "flat"


def test_download_failures_leave_no_dataset(http_dir, tmp_path):
    www, url = http_dir
    make_zip(www / "toy.zip")
    with pytest.raises(GantrainError, match="sha256"):
        download_and_extract(f"{url}/toy.zip", tmp_path, sha256="0" * 64, progress=False)
    assert not (tmp_path / "toy").exists() and not (tmp_path / "toy.zip").exists()
    (www / "broken.zip").write_bytes((www / "toy.zip").read_bytes()[:-200])
    with pytest.raises(GantrainError, match="damaged|neither"):
        download_and_extract(f"{url}/broken.zip", tmp_path, progress=False)
    assert not (tmp_path / "broken").exists()
    make_zip(www / "wrong.zip", top="wrong")
    with pytest.raises(GantrainError, match="lacks"):
        download_and_extract(f"{url}/wrong.zip", tmp_path, expect=("trainA", "images"), progress=False)
    assert not (tmp_path / "wrong").exists()
    with pytest.raises(GantrainError, match="HTTP 404"):
        download_and_extract(f"{url}/missing.zip", tmp_path, progress=False)


def test_offline_error_is_one_line_with_url_and_layout(tmp_path):
    with pytest.raises(GantrainError) as info:
        download_and_extract("http://127.0.0.1:9/horse2zebra.zip", tmp_path, expect=("trainA", "trainB"), timeout=2)
    msg = str(info.value)
    assert "\n" not in msg and "http://127.0.0.1:9/horse2zebra.zip" in msg and str(tmp_path / "horse2zebra") in msg
    assert "trainA" in msg


# ------------------------------------------------------------------ digits domains
def test_digits2negative_domains_and_batches():
    data = Digits2Negative(data_cfg("digits2negative"))
    train = data.split("train")
    assert abs(train.a.shape[0] - train.b.shape[0]) <= 10 and train.a.shape[0] + train.b.shape[0] == 1437
    # disjoint halves: no A image equals the negative-inverse of a B image at the same label count
    a_set = {bytes(x.numpy()) for x in train.a}
    b_inverse = {bytes((255 - x).numpy()) for x in train.b}
    assert len(a_set & b_inverse) < 5  # (a few digits in sklearn's set are exact duplicates)
    test = data.split("test")
    torch.testing.assert_close(test.b.float(), 255 - test.a.float())
    idx = torch.arange(8)
    b1 = train.batch(idx, torch.Generator().manual_seed(3))
    b2 = train.batch(idx, torch.Generator().manual_seed(3))
    assert b1["A"].shape == (8, 1, 32, 32) and set(b1) == {"A", "B"}
    assert torch.equal(b1["B"], b2["B"]) and b1["A"].min() >= -1 and b1["A"].max() <= 1
    b3 = train.batch(idx, torch.Generator().manual_seed(4))
    assert torch.equal(b1["A"], b3["A"]) and not torch.equal(b1["B"], b3["B"])  # B drawn at random
    assert data.info.paired_test and data.info.channels == 1
    assert len(train) == max(train.a.shape[0], train.b.shape[0])


def test_digits2edges_is_dilation_minus_digit():
    data = Digits2Edges(data_cfg("digits2edges"))
    test = data.split("test")
    x = test.a.float() / 255
    want = (F.max_pool2d(x, 3, 1, 1) - x).mul(255).round()
    torch.testing.assert_close(test.b.float(), want)
    assert test.domain("B").labels is not None


# ------------------------------------------------------------------ folders
def _write_images(folder: Path) -> None:
    """One of each awkward kind: grey, RGBA, palette, 16-bit, upper-case extension, nested folder."""
    (folder / "trainA" / "nested").mkdir(parents=True)
    (folder / "trainB").mkdir()
    (folder / "testA").mkdir()
    (folder / "testB").mkdir()
    Image.new("L", (40, 30), 100).save(folder / "trainA" / "grey.png")
    Image.new("RGBA", (40, 30), (255, 0, 0, 128)).save(folder / "trainA" / "nested" / "alpha.PNG")
    Image.new("P", (20, 20), 3).save(folder / "trainA" / "pal.bmp")
    Image.fromarray(np.full((30, 30), 65535, dtype=np.uint16)).save(folder / "trainB" / "deep.tif")
    Image.new("RGB", (30, 30), (0, 0, 255)).save(folder / "trainB" / "b.JPG")
    (folder / "trainB" / "notes.txt").write_text("not an image")
    Image.new("RGB", (30, 30), (0, 255, 0)).save(folder / "testA" / "t.png")
    Image.new("RGB", (30, 30), (9, 9, 9)).save(folder / "testB" / "t.png")


@pytest.mark.parametrize("channels", [1, 3])
def test_unpaired_folder_modes_crop_flip(tmp_path, channels):
    _write_images(tmp_path)
    cfg = data_cfg("unpaired_folder", root=str(tmp_path), load_size=20, crop_size=16, channels=channels)
    data = UnpairedFolder(cfg)
    train = data.split("train")
    assert train.a.shape == (3, channels, 20, 20) and train.b.shape == (2, channels, 20, 20)
    b = train.batch(torch.arange(3), torch.Generator().manual_seed(0))
    assert b["A"].shape == (3, channels, 16, 16) and b["B"].shape == (3, channels, 16, 16)
    assert float(train.b.max()) == 255  # 16-bit white stays white
    assert data.split("test").a.shape[-1] == 16  # test loads at crop_size (load = crop)
    assert data.info.image_size == 16 and data.info.channels == channels
    if channels == 3:
        alpha = train.a[1]  # sorted: grey.png, nested/alpha.PNG, pal.bmp; red over white at alpha 0.5
        assert alpha[0, 0, 0] == 255 and 120 < int(alpha[1, 0, 0]) < 135


def test_unpaired_folder_errors(tmp_path):
    with pytest.raises(GantrainError, match="data.root is not set"):
        UnpairedFolder(data_cfg("unpaired_folder"))
    (tmp_path / "trainA").mkdir()
    with pytest.raises(GantrainError, match="trainB"):
        UnpairedFolder(data_cfg("unpaired_folder", root=str(tmp_path)))
    with pytest.raises(GantrainError, match="download=true"):
        UnpairedFolder(data_cfg("unpaired_folder", root=str(tmp_path), dataset="horse2zebra"))
    with pytest.raises(GantrainError, match="preprocess"):
        UnpairedFolder(data_cfg("unpaired_folder", root=str(tmp_path), preprocess="zoom"))
    _write_images(tmp_path / "mixed")
    with pytest.raises(GantrainError, match="different sizes"):
        UnpairedFolder(data_cfg("unpaired_folder", root=str(tmp_path / "mixed"), preprocess="none")).split("train")
