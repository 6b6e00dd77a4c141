"""BiGAN, the encoder block, GAN inversion, latent_encoder and the latent metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import TINY, compose_cfg, run_cli
from gantrain.config.schema import validate_config
from gantrain.errors import GantrainError
from gantrain.inversion import DEFAULTS, InversionSettings, Latent, invert, latent_of, per_image_mse, reconstruction_error
from gantrain.metrics.latent import probe_accuracies
from gantrain.nets.encoder import build_encoder
from gantrain.nets.features import FEATURE_WEIGHTS, VGG16Features, build_features
from gantrain.runs import build_model, load_trained
from gantrain.trainer.trainer import Trainer

BIGAN = ["model=bigan", "data.image_size=16", "model.g_hidden=[32]", "model.e_hidden=[32]", "model.d_x_hidden=[32]",
         "model.d_z_hidden=[16]", "model.d_joint_hidden=[32]", "model.z_dim=8"]


BASE = [o for o in TINY if not o.startswith("model.")]  # latent_encoder has no ngf


def train(overrides: list[str], run_dir: Path) -> Trainer:
    trainer = Trainer(validate_config(compose_cfg(BASE + overrides)), run_dir)
    trainer.setup()
    trainer.fit()
    return trainer


def test_bigan_losses_match_hand_computation():
    """D: (x, E(x)) real, (G(z), z) fake; E and G with inverted labels (E wants fake, G wants real)."""
    cfg = validate_config(compose_cfg(TINY + BIGAN + ["trainer.max_steps=1"]))
    trainer = Trainer(cfg, Path("run"))
    trainer.setup()
    model = trainer.model
    for opt in model.optimizers.values():  # lr 0: the nets stay as they are, so the losses can be recomputed
        for group in opt.param_groups:
            group["lr"] = 0.0
    x = trainer.data.split("train").batch(torch.arange(16))["image"]
    torch.manual_seed(7)
    out = model.train_step({"image": x}, 0)
    torch.manual_seed(7)
    G, E, D = model.nets["G"], model.nets["E"], model.nets["D"]
    z = model.sample_z(16)
    assert z.min() >= -1 and z.max() <= 1 and z.shape == (16, 8)  # 50-d uniform by default; 8-d here
    with torch.no_grad():
        real_logits, fake_logits = D(x, E(x)), D(G(z), z)
    bce = F.binary_cross_entropy_with_logits
    assert torch.allclose(out["D_real"], bce(real_logits, torch.ones(16)), atol=1e-5)
    assert torch.allclose(out["D_fake"], bce(fake_logits, torch.zeros(16)), atol=1e-5)
    assert torch.allclose(out["E"], bce(real_logits, torch.zeros(16)), atol=1e-5)
    assert torch.allclose(out["G"], bce(fake_logits, torch.ones(16)), atol=1e-5)
    assert set(model.optimizers) == {"D", "E", "G"}


def test_stochastic_encoder_samples_in_training_and_gives_mean_in_eval():
    E = build_encoder("dcgan", 1, 16, 6, ndf=4, stochastic=True)
    x = torch.randn(5, 1, 16, 16)
    E.eval()  # batch norm with running statistics: the same x gives the same moments
    mean, logvar = E.moments(x)
    assert mean.shape == logvar.shape == (5, 6)
    assert torch.equal(E(x), mean)
    assert not torch.allclose(E(x, sample=True), E(x, sample=True))
    assert build_encoder("mlp", 1, 16, 6, hidden=[8]).eval()(x).shape == (5, 6)
    with pytest.raises(GantrainError, match="arch"):
        build_encoder("vgg", 1, 16, 6)


def test_bigan_trains_end_to_end_with_latent_metrics(tmp_path, classifier_cache):
    trainer = train(BIGAN + ["model.encoder=stochastic", "model.d_dropout=0.2", "eval.at_end=true",
                             "eval.metrics=[reconstruction]", "eval.num_samples=64"], tmp_path / "bigan")
    assert trainer.progress.step == 4
    metrics = json.loads((tmp_path / "bigan" / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("eval/recon_mse", "eval/recon_ratio", "eval/latent_mse", "eval/sample_recon_mse"):
        assert key in metrics and np.isfinite(metrics[key])


def test_unknown_bigan_loss_is_one_line_error():
    with pytest.raises(GantrainError, match="bce or lsgan"):
        Trainer(validate_config(compose_cfg(TINY + BIGAN + ["model.loss=hinge"])), Path("x")).setup()


class LinearG(nn.Module):
    def __init__(self, z_dim: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(z_dim, 64)

    def forward(self, z):
        return torch.tanh(self.lin(z)).view(-1, 1, 8, 8)


def test_optimize_inverts_a_known_generator_and_keeps_z_on_the_prior():
    G = LinearG().eval()
    latent = Latent(G, 4, "uniform")
    gen = torch.Generator().manual_seed(0)
    z_true = torch.rand(6, 4, generator=gen) * 1.6 - 0.8
    x = G(z_true).detach()
    s = InversionSettings(steps=150, lr=0.05, restarts=3)
    z = invert(latent, x, "optimize", s, gen)
    assert z.shape == (6, 4) and z.abs().max() <= 1
    assert per_image_mse(G(z), x).max() < 1e-3
    assert all(p.requires_grad for p in G.parameters())  # G is left as it was
    pooled = InversionSettings(steps=150, lr=0.05, restarts=2, feature_weight=1.0)  # plus a feature (perceptual) term
    z = invert(latent, x, "optimize", pooled, gen, features=lambda img: F.avg_pool2d(img, 2).flatten(1))
    assert per_image_mse(G(z), x).max() < 1e-3
    far = invert(latent, torch.ones(2, 1, 8, 8), "optimize", InversionSettings(steps=30, lr=0.5, restarts=2), gen)
    assert far.abs().max() <= 1  # the clipped prior holds even when the target pulls z out


def test_encoder_and_hybrid_need_an_encoder_and_hybrid_improves_on_it():
    G = LinearG().eval()
    with pytest.raises(GantrainError, match="needs an encoder"):
        invert(Latent(G, 4, "uniform"), torch.zeros(1, 1, 8, 8), "hybrid", InversionSettings(), torch.Generator())
    torch.manual_seed(1)
    E = nn.Sequential(nn.Flatten(), nn.Linear(64, 4)).eval()  # a poor (random) encoder
    latent = Latent(G, 4, "uniform", E)
    z_true = torch.rand(5, 4) - 0.5
    x = G(z_true).detach()
    gen = torch.Generator().manual_seed(0)
    z_enc = invert(latent, x, "encoder", InversionSettings(), gen)
    z_hyb = invert(latent, x, "hybrid", InversionSettings(steps=100, lr=0.05, lambda_dom=0.01), gen)
    assert per_image_mse(G(z_hyb), x).mean() < per_image_mse(G(z_enc), x).mean() / 10


def test_reconstruction_error_psnr_hand_computed():
    x = torch.full((1, 1, 2, 2), -1.0)
    mse, psnr = reconstruction_error(x, torch.zeros_like(x))  # [0, 1] images: 0 vs 0.5
    assert mse.item() == pytest.approx(0.25)
    assert psnr.item() == pytest.approx(10 * np.log10(4))


def test_probe_accuracies_on_separable_features():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    feats = np.eye(3)[y] * 5 + rng.normal(0, 0.1, (60, 3))
    knn, logreg = probe_accuracies(feats[::2], y[::2], feats[1::2], y[1::2])
    assert knn == logreg == 1.0


def test_latent_encoder_and_invert_cli_end_to_end(tmp_path, classifier_cache):
    """A DCGAN, an encoder for it (self-contained checkpoint), and gantrain-invert with each method."""
    dcgan = ["data.image_size=16", "model.ngf=4", "model.ndf=4", "model.z_dim=6", "trainer.max_steps=2"]
    gan = train(dcgan, tmp_path / "gan")
    enc = train(["model=latent_encoder", f"model.generator={tmp_path / 'gan'}", "data.image_size=16", "model.ndf=4",
                 "model.image_weight=0.5", "trainer.max_steps=3", f"eval.classifier_cache={classifier_cache}"], tmp_path / "enc")
    for k, v in gan.model.nets["G"].state_dict().items():  # G stays frozen
        assert torch.equal(v, enc.model.nets["G"].state_dict()[k])
    assert set(enc.model.optimizers) == {"E"}
    (tmp_path / "gan" / "checkpoints" / "last.pt").rename(tmp_path / "moved.pt")
    for p in (tmp_path / "gan" / "checkpoints").glob("*.pt"):
        p.unlink()
    model, nets, ckpt, _ = load_trained(str(tmp_path / "enc"), "cpu")  # works without the generator run
    assert ckpt["config"]["model"]["generator_model"]["name"] == "dcgan"
    assert latent_of(model, nets).E is not None
    images = tmp_path / "in"
    (images / "sub").mkdir(parents=True)
    from gantrain.data.images import save_png

    for i, name in enumerate(["b.png", "a.png", "sub/c.png"]):
        save_png(torch.rand(1, 16, 16) * 2 - 1, images / name)
    from gantrain.cli.invert import main as invert_main

    for method in ("optimize", "encoder", "hybrid"):
        out = tmp_path / f"out_{method}"
        invert_main([str(tmp_path / "enc"), "--input", str(images), "--out", str(out), "--method", method,
                     "--steps", "3", "--restarts", "2", "--device", "cpu"])
        names = json.loads((out / "latents.json").read_text())["files"]
        assert names == ["a.png", "b.png", "sub/c.png"]
        assert np.load(out / "latents.npy").shape == (3, 6)
        assert all((out / n).is_file() for n in names)
        metrics = json.loads((out / "metrics.json").read_text())
        assert [m["file"] for m in metrics["per_image"]] == names
        assert metrics["mean_mse"] == pytest.approx(np.mean([m["mse"] for m in metrics["per_image"]]))
        assert metrics["seconds_per_image"] > 0 and metrics["method"] == method
        # hybrid at IDInvert's lr with the feature term on (the digits classifier is available); optimize without it
        expected = {"hybrid": (0.01, "auto", "classifier", FEATURE_WEIGHTS["classifier"])}.get(method, (0.05, "none", "none", 0.0))
        assert (metrics["lr"], metrics["features"], metrics["feature_net"], metrics["feature_weight"]) == expected
    bad = run_cli(["gantrain.cli.invert", str(tmp_path / "moved.pt"), "--input", str(images), "--out", str(tmp_path / "o"),
                   "--method", "encoder"], tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: --method encoder needs an encoder")


def test_latent_encoder_errors(tmp_path):
    with pytest.raises(GantrainError, match="model.generator=RUN"):
        build_model(validate_config(compose_cfg(BASE + ["model=latent_encoder"])), None)
    train(["data.image_size=16", "model.ngf=4", "model.ndf=4", "trainer.max_steps=1"], tmp_path / "gan")
    cfg = validate_config(compose_cfg(BASE + ["model=latent_encoder", f"model.generator={tmp_path / 'gan'}", "data.image_size=32"]))
    with pytest.raises(GantrainError, match="16px"):
        Trainer(cfg, tmp_path / "enc").setup()


IDINVERT = ["model=latent_encoder", "model.objective=idinvert", "data.image_size=16", "model.ndf=4", "model.d_ndf=4",
            "trainer.precision=32"]


def idinvert_trainer(tmp_path: Path, extra: list[str]) -> Trainer:
    """A latent_encoder with IDInvert's objective for a 2-step 16 px DCGAN."""
    train(["data.image_size=16", "model.ngf=4", "model.ndf=4", "model.z_dim=6", "trainer.max_steps=2"], tmp_path / "gan")
    trainer = Trainer(validate_config(compose_cfg(BASE + IDINVERT + [f"model.generator={tmp_path / 'gan'}", *extra])), tmp_path / "enc")
    trainer.setup()
    return trainer


def test_idinvert_losses_match_hand_computation(tmp_path):
    """E: ||x - G(E(x))||^2 + 0.1 softplus(-D(G(E(x)))) + w ||F(x) - F(G(E(x)))||^2 on real x; D: logistic + 5 R1."""
    model = idinvert_trainer(tmp_path, ["model.features=none", "trainer.max_steps=1"]).model
    assert set(model.optimizers) == {"E", "D"} and model.features is None
    for opt in model.optimizers.values():  # lr 0: the nets stay as they are, so the losses can be recomputed
        for group in opt.param_groups:
            group["lr"] = 0.0
    pool = lambda img: F.avg_pool2d(img, 4).flatten(1)  # noqa: E731 - a stand-in feature net
    model.features, model.feature_weight = pool, 0.5
    x = torch.rand(8, 1, 16, 16) * 2 - 1
    out = model.train_step({"image": x}, 0)
    G, E, D = model.nets["G"], model.nets["E"], model.nets["D"]
    with torch.no_grad():
        recon = G(E(x))  # E in train mode: batch statistics, as in the step
        fake_logits = D(recon)
    pixel, feat = (recon - x).pow(2).mean(), (pool(recon) - pool(x)).pow(2).mean()
    real = x.clone().requires_grad_(True)
    real_logits = D(real)
    (grads,) = torch.autograd.grad(real_logits.sum(), real)
    r1 = grads.pow(2).flatten(1).sum(1).mean()
    assert torch.allclose(out["image_mse"], pixel, atol=1e-6) and torch.allclose(out["feature_mse"], feat, atol=1e-6)
    assert torch.allclose(out["E"], pixel + 0.1 * F.softplus(-fake_logits).mean() + 0.5 * feat, atol=1e-5)
    assert torch.allclose(out["r1"], r1, atol=1e-6)
    d_loss = F.softplus(fake_logits).mean() + F.softplus(-real_logits.detach()).mean() + 10.0 / 2 * r1
    assert torch.allclose(out["D"], d_loss, atol=1e-5)


def test_idinvert_encoder_learns_with_the_classifier_features_and_checkpoints_d(tmp_path, classifier_cache, caplog):
    caplog.set_level("INFO", logger="gantrain.models.latent_encoder")
    trainer = idinvert_trainer(tmp_path, [f"model.feature_cache={classifier_cache}", "trainer.max_steps=2", "optim.lr=2e-3"])
    model = trainer.model
    assert "F = the digits classifier's trunk" in caplog.text and model.feature_weight == FEATURE_WEIGHTS["classifier"]
    trainer.fit()
    ckpt = load_trained(str(tmp_path / "enc"), "cpu").ckpt
    assert {"D", "E", "G"} <= set(ckpt["nets"]) and ckpt["optimizers"]["D"]["state"] and ckpt["optimizers"]["E"]["state"]
    x = trainer.data.split("train").batch(torch.arange(32))["image"]
    outs = [model.train_step({"image": x}, step) for step in range(40)]
    first, last = ({k: torch.stack([o[k] for o in part]).mean() for k in ("image_mse", "feature_mse", "D_real", "D_fake")}
                   for part in (outs[:5], outs[-5:]))
    assert last["image_mse"] < first["image_mse"] and last["feature_mse"] < first["feature_mse"]
    assert last["D_real"] + last["D_fake"] < 2 * np.log(2)  # D tells real digits from reconstructions apart


def test_feature_nets_without_a_classifier_and_vgg16_shapes():
    from types import SimpleNamespace

    from gantrain.data.base import InMemoryImages

    unlabelled = InMemoryImages(torch.zeros(4, 1, 8, 8, dtype=torch.uint8))
    data = SimpleNamespace(info=SimpleNamespace(name="folder", num_classes=0), split=lambda name: unlabelled)
    off = build_features("auto", data, torch.device("cpu"))
    assert off.fn is None and off.weight(None) == 0.0 and "features=vgg16" in off.description
    assert build_features("none", data, torch.device("cpu")).fn is None
    with pytest.raises(GantrainError, match="labelled"):
        build_features("classifier", data, torch.device("cpu"))
    with pytest.raises(GantrainError, match="auto, classifier, vgg16, none"):
        build_features("lpips", data, torch.device("cpu"))
    vgg = VGG16Features(pretrained=False)  # the architecture only: nothing is downloaded in tests
    assert vgg(torch.zeros(2, 1, 32, 32)).shape == (2, 512, 4, 4)  # conv4_3 of a grey 32 px image


def test_invert_cli_defaults_are_idinvert_for_hybrid():
    from gantrain.cli.invert import parse_args, settings_of

    def settings(*flags: str) -> InversionSettings:
        return settings_of(parse_args(["RUN", "--input", "in", "--out", "out", *flags]))

    assert settings() == DEFAULTS["hybrid"] == InversionSettings(steps=100, lr=0.01, lambda_dom=2.0, features="auto",
                                                                 keep_prior="none")
    assert settings("--method", "optimize") == InversionSettings(steps=100, lr=0.05, restarts=4, features="none")
    assert settings("--method", "optimize", "--feature-weight", "0.5").features == "classifier"  # its old meaning
    assert settings("--method", "encoder", "--features", "vgg16").features == "none"
    assert settings("--steps", "7", "--features", "none", "--lr", "0.1", "--keep-prior", "clip") == InversionSettings(
        steps=7, lr=0.1, features="none")
    assert settings("--method", "encoder").keep_prior == "none"
