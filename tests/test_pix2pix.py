"""pix2pix: paired data (edges2digits, aligned folders, named downloads), the model's losses and inference,
the paired metric, and the CLI end to end on a tiny config."""

from __future__ import annotations

import copy
import functools
import http.server
import io
import json
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf
from PIL import Image

from conftest import compose_cfg, data_cfg, run_cli, run_metrics
from gantrain.metrics.base import EvalSetup
from gantrain.config.schema import group_config, validate_config
from gantrain.data import aligned
from gantrain.data.aligned import AlignedFolder, AlignedImages
from gantrain.data.digit_domains import Edges2Digits
from gantrain.data.base import DataInfo
from gantrain.errors import GantrainError
from gantrain.inversion import reconstruction_error
from gantrain.metrics import paired
from gantrain.nets.classifier import SmallClassifier
from gantrain.models.pix2pix import Pix2Pix


def _model_cfg(**kw):
    base = dict(netG="unet_32", ngf=4, ndf=4)
    base.update(kw)
    return group_config("model", "pix2pix", **base)


@pytest.fixture(scope="module")
def digits():
    return Edges2Digits(data_cfg("edges2digits"))


# ------------------------------------------------------------------ edges2digits
def test_edges2digits_pairs_are_edge_map_and_digit(digits):
    train, test = digits.split("train"), digits.split("test")
    assert (len(train), len(test)) == (1437, 360)
    b = test.batch(torch.arange(5))
    x = b["B"].add(1).div(2)
    want = F.max_pool2d(x, 3, stride=1, padding=1) - x
    assert b["A"].shape == b["B"].shape == (5, 1, 32, 32)
    assert torch.allclose(b["A"].add(1).div(2), want, atol=1 / 255 + 1e-6)
    assert b["label"].tolist() == digits.labelled_domain("B", "test").labels[:5].tolist()
    info = digits.info
    assert info.paired and info.direction == "AtoB" and info.num_classes == 10
    assert Edges2Digits(data_cfg("edges2digits", direction="BtoA")).info.direction == "BtoA"
    with pytest.raises(GantrainError, match="data.direction=sideways"):
        Edges2Digits(data_cfg("edges2digits", direction="sideways"))


def test_pair_crop_and_flip_are_shared():
    gen = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (8, 3, 12, 12), dtype=torch.uint8)
    split = AlignedImages(imgs, imgs.clone(), crop=8, flip=True)
    seen = set()
    for s in range(4):
        b = split.batch(torch.arange(8), torch.Generator().manual_seed(s))
        assert b["A"].shape == (8, 3, 8, 8)
        assert torch.equal(b["A"], b["B"])  # identical pairs stay identical: one crop and one flip per pair
        seen.add(b["A"][0].sum().item())
    assert len(seen) > 1  # the windows do move
    ev = split.batch(torch.arange(2))  # evaluation: centre crop, no flip
    assert torch.equal(ev["A"], imgs[:2, :, 2:10, 2:10].float() / 127.5 - 1)
    del gen


# ------------------------------------------------------------------ folders
def _side_by_side(folder: Path, n: int, size: int = 8) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        arr = np.zeros((size, 2 * size, 3), np.uint8)
        arr[:, :size] = 10 * i  # A (left)
        arr[:, size:] = 200  # B (right)
        Image.fromarray(arr).save(folder / f"{i}.png")


def test_aligned_folder_side_by_side(tmp_path):
    _side_by_side(tmp_path / "ds" / "train", 3)
    _side_by_side(tmp_path / "ds" / "val", 2)
    data = AlignedFolder(data_cfg("aligned_folder", root=str(tmp_path / "ds"), load_size=8, crop_size=8, flip=False))
    train, test = data.split("train"), data.split("test")  # no test/: falls back to val/
    assert (len(train), len(test)) == (3, 2)
    b = train.batch(torch.arange(3), torch.Generator().manual_seed(0))
    assert b["A"].shape == (3, 3, 8, 8)
    assert torch.allclose(b["A"][:, 0, 0, 0], torch.tensor([0.0, 10, 20]) / 127.5 - 1)
    assert torch.allclose(b["B"], torch.full_like(b["B"], 200 / 127.5 - 1))
    assert data.info.image_size == 8 and data.info.paired


def test_aligned_folder_two_folders_matched_by_name(tmp_path):
    for side, value in (("A", 50), ("B", 150)):
        (tmp_path / f"train{side}").mkdir()
        for name in ("x", "y") + (("only_a",) if side == "A" else ()):
            Image.new("L", (8, 8), value + (name == "y") * 20).save(tmp_path / f"train{side}" / f"{name}.png")
    data = AlignedFolder(data_cfg("aligned_folder", root=str(tmp_path), channels=1, load_size=8, crop_size=8))
    train = data.split("train")
    assert len(train) == 2  # only_a has no partner
    b = train.batch(torch.arange(2))
    assert (b["A"].add(1).mul(127.5).round()[:, 0, 0, 0].tolist(), b["B"].add(1).mul(127.5).round()[:, 0, 0, 0].tolist()) == (
        [50, 70], [150, 170])


def test_aligned_folder_errors(tmp_path):
    mk = lambda **kw: AlignedFolder(data_cfg("aligned_folder", **kw))  # noqa: E731
    with pytest.raises(GantrainError, match="data.root is not set"):
        mk()
    with pytest.raises(GantrainError, match="neither train/ nor trainA/"):
        mk(root=str(tmp_path))
    with pytest.raises(GantrainError, match="licence.*cityscapes-dataset.com"):
        mk(root=str(tmp_path), dataset="cityscapes")
    with pytest.raises(GantrainError, match="unknown pix2pix dataset 'shoes'"):
        mk(root=str(tmp_path), dataset="shoes")
    with pytest.raises(GantrainError, match="data.download=true to fetch http://efrosgans.*facades.tar.gz"):
        mk(root=str(tmp_path), dataset="facades")
    (tmp_path / "odd" / "train").mkdir(parents=True)
    Image.new("RGB", (9, 8)).save(tmp_path / "odd" / "train" / "a.png")
    with pytest.raises(GantrainError, match="cannot be halved"):
        mk(root=str(tmp_path / "odd"), load_size=4, crop_size=4).split("train")


@pytest.fixture
def http_dir(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_named_dataset_download_from_local_server(http_dir, tmp_path, monkeypatch):
    www, url = http_dir
    with tarfile.open(www / "edges2shoes.tar.gz", "w:gz") as tf:
        for split in ("train", "val"):
            for i in range(2):
                buf = io.BytesIO()
                Image.new("RGB", (16, 8), (30 * i, 0, 0)).save(buf, format="PNG")
                info = tarfile.TarInfo(f"edges2shoes/{split}/{i}_AB.jpg")
                info.size = len(buf.getvalue())
                tf.addfile(info, io.BytesIO(buf.getvalue()))
    monkeypatch.setattr(aligned, "PIX2PIX_URL", url + "/{name}.tar.gz")
    data = AlignedFolder(data_cfg("aligned_folder", root=str(tmp_path / "data"), dataset="edges2shoes", download=True,
                              load_size=8, crop_size=8, test_split="val"))
    assert data.folder == tmp_path / "data" / "pix2pix" / "edges2shoes"
    assert (len(data.split("train")), len(data.split("test"))) == (2, 2)
    assert not list((tmp_path / "data" / "pix2pix").glob("*.tar.gz"))  # the archive is removed once unpacked


# ------------------------------------------------------------------ model
def test_default_nets_follow_the_paper():
    info = DataInfo("x", 3, 256, paired=True, direction="AtoB")
    m = Pix2Pix(group_config("model", "pix2pix", ngf=4, ndf=4), info)
    G, D = m.nets["G"], m.nets["D"]
    assert sum(isinstance(x, nn.Dropout) for x in G.modules()) == 3  # unet_256: 3 inner 8ngf decoder levels
    assert any(isinstance(x, nn.BatchNorm2d) for x in G.modules())
    assert D(torch.zeros(1, 6, 256, 256)).shape == (1, 1, 30, 30)  # 70x70 PatchGAN on (input, output)
    with pytest.raises(GantrainError, match="divisible by 256"):
        Pix2Pix(group_config("model", "pix2pix", ngf=4, ndf=4), DataInfo("x", 3, 32, paired=True))
    with pytest.raises(GantrainError, match="gan_mode=wgan"):
        Pix2Pix(group_config("model", "pix2pix", gan_mode="wgan"), info)
    with pytest.raises(GantrainError, match="needs paired data"):
        Pix2Pix(_model_cfg(), DataInfo("digits", 1, 32))


@pytest.mark.parametrize("gan_mode", ["vanilla", "lsgan"])
def test_losses_match_hand_computation(digits, gan_mode):
    torch.manual_seed(0)
    m = Pix2Pix(_model_cfg(norm="instance", dropout=False, gan_mode=gan_mode, lambda_L1=100.0), digits.info)
    m.configure_optimizers(lambda name, p: torch.optim.Adam(p, lr=1e-3, betas=(0.5, 0.999)))
    batch = digits.split("train").batch(torch.arange(4))
    G0, D0 = copy.deepcopy(m.nets["G"]), copy.deepcopy(m.nets["D"])
    out = m.train_step(batch, 0)
    a, b = batch["A"], batch["B"]
    with torch.no_grad():
        fake = G0(a)
        real_logits, fake_logits = D0(torch.cat([a, b], 1)), D0(torch.cat([a, fake], 1))
        after = m.nets["D"](torch.cat([a, fake], 1))  # G's GAN term uses the D just updated
    if gan_mode == "vanilla":
        d_real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        d_fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        g_gan = F.binary_cross_entropy_with_logits(after, torch.ones_like(after))
    else:
        d_real, d_fake, g_gan = (real_logits - 1).pow(2).mean(), fake_logits.pow(2).mean(), (after - 1).pow(2).mean()
    assert set(out) == {"G_GAN", "G_L1", "D_real", "D_fake"}
    for key, want in (("D_real", d_real), ("D_fake", d_fake), ("G_GAN", g_gan), ("G_L1", (fake - b).abs().mean())):
        assert out[key].item() == pytest.approx(want.item(), rel=1e-4, abs=1e-6), key
    # D's gradients are those of its own loss alone (G's backward through the frozen D added nothing) and D is
    # trainable again for the next step
    D1 = copy.deepcopy(D0)
    real_logits, fake_logits = D1(torch.cat([a, b], 1)), D1(torch.cat([a, fake], 1))
    if gan_mode == "vanilla":
        loss_D = 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                        + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    else:
        loss_D = 0.5 * ((real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean())
    loss_D.backward()
    for (name, p), q in zip(m.nets["D"].named_parameters(), D1.parameters()):
        assert p.requires_grad, name
        assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-7), name


def test_translate_direction_and_paper_inference(digits):
    m = Pix2Pix(_model_cfg(), digits.info)
    m.prepare(digits)
    x = digits.split("test").batch(torch.arange(4))["A"]
    bn = next(mod for mod in m.nets["G"].modules() if isinstance(mod, nn.BatchNorm2d))
    before = (bn.running_mean.clone(), bn.num_batches_tracked.clone())
    m.nets.eval()
    torch.manual_seed(5)
    draw = torch.rand(1)
    torch.manual_seed(5)
    y1, y2 = m.translate(x, "AtoB"), m.translate(x, "AtoB")
    assert torch.equal(torch.rand(1), draw)  # the global RNG stream is untouched
    assert torch.equal(y1, y2) and y1.shape == (4, 1, 32, 32)  # dropout draws are seeded: repeatable
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.num_batches_tracked, before[1])
    assert not m.nets["G"].training
    with pytest.raises(GantrainError, match="learnt AtoB only"):
        m.translate(x, "BtoA")
    grids = m.sample_grids(m.fixed_inputs(100, torch.Generator()))
    assert set(grids) == {"input", "output", "target"} and grids["output"].shape == (8, 1, 32, 32)
    m_eval = Pix2Pix(_model_cfg(test_mode="eval"), digits.info)
    m_eval.nets.eval()
    assert torch.equal(m_eval.translate(x, "AtoB"), m_eval.nets["G"](x))
    back = Pix2Pix(_model_cfg(), Edges2Digits(data_cfg("edges2digits", direction="BtoA")).info)
    assert (back.src, back.dst, back.size_multiple("BtoA")) == ("B", "A", 32)


def test_paired_metric_on_a_perfect_translator(digits, monkeypatch):
    torch.manual_seed(0)
    net = SmallClassifier(1, 10).eval()
    monkeypatch.setattr(paired, "load_or_train", lambda *a, **k: (net, {"test_accuracy": 0.25}))
    cfg = OmegaConf.create({"eval": {"split": "test", "batch_size": 100, "classifier_cache": None}})
    test = digits.split("test")

    class Oracle:  # returns the true digit for each edge map
        directions = ("AtoB",)
        lookup = {test.domain("A").images[i].numpy().tobytes(): i for i in range(len(test))}

        def translate(self, x, direction, nets=None):
            key = lambda img: img.add(1).mul(127.5).round().to(torch.uint8).numpy().tobytes()  # noqa: E731
            return torch.stack([test.batch(torch.tensor([self.lookup[key(img)]]))["B"][0] for img in x])

    metric = paired.PairedTranslationMetrics(EvalSetup(cfg, digits, Oracle(), torch.device("cpu")))
    out = metric.evaluate(metric.setup.model, None)
    real = test.batch(torch.arange(len(test)))
    _, logits = net(real["B"])
    assert out["test_L1"] == 0 and out["test_PSNR"] == pytest.approx(100.0) and out["n_test"] == 360
    assert out["class_acc"] == pytest.approx((logits.argmax(1) == real["label"]).double().mean().item())
    assert out["class_acc_real"] == 0.25
    assert reconstruction_error(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.2))[1].item() == pytest.approx(20.0)


# ------------------------------------------------------------------ configs and CLI
def test_default_composition_uses_recipe_and_preset():
    cfg = validate_config(compose_cfg(["model=pix2pix", "data=edges2digits"]))
    assert (cfg.model.netG, cfg.model.gan_mode, cfg.model.lambda_L1, cfg.model.dropout) == ("unet_32", "vanilla", 100.0, True)
    assert (cfg.optim.schedule, cfg.optim.lr, list(cfg.optim.betas)) == ("linear_decay", 2e-4, [0.5, 0.999])
    assert run_metrics(cfg) == ["paired"]
    full = validate_config(compose_cfg(["model=pix2pix", "data=aligned_folder"]))
    assert (full.model.netG, full.model.ngf, full.trainer.max_epochs, full.optim.decay_epochs) == ("unet_256", 64, 200, 100)
    assert (full.data.batch_size, full.data.load_size, full.data.crop_size, full.data.flip) == (1, 286, 256, True)
    with pytest.raises(GantrainError, match="model.lamda_L1"):
        validate_config(compose_cfg(["model=pix2pix", "data=edges2digits", "+model.lamda_L1=1"]))


def test_cli_end_to_end_tiny(tmp_path):
    run = tmp_path / "run"
    proc = run_cli(["gantrain", "model=pix2pix", "data=edges2digits", "trainer.max_epochs=null", "trainer.max_steps=3",
                    "trainer.log_every=3", "trainer.progress_bar=false", "logger.tensorboard=false", "eval.metrics=[]",
                    "model.ngf=4", "model.ndf=4", "data.batch_size=4", "data.direction=BtoA", f"hydra.run.dir={run}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"loss/G_GAN", "loss/G_L1", "loss/D_real", "loss/D_fake"} <= set().union(*logged)
    assert {p.name.split("_step")[0] for p in (run / "samples").glob("*.png")} == {"input", "output", "target"}
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["data_info"]["direction"] == "BtoA"
