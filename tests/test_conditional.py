"""Class-conditional families (cgan, acgan): conditioning blocks, losses against hand computation, label sampling,
class grids, checkpoints carrying class names, the classifier's conditional accuracy, and `gantrain-sample --labels`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import TINY, compose_cfg, run_cli
from gantrain import runs
from gantrain.cli import sample as sample_cli
from gantrain.config.schema import group_config, validate_config
from gantrain.data.base import DataInfo
from gantrain.errors import GantrainError
from gantrain.metrics.features import ClassifierMetrics
from gantrain.models.acgan import ACGAN
from gantrain.models.cgan import CGAN
from gantrain.models.conditional import grid_labels, label_probabilities
from gantrain.nets.conditional import (
    AuxClassifierDiscriminator,
    ConditionalBatchNorm2d,
    ConditionalDiscriminator,
    ConditionalGenerator,
)
from gantrain.trainer.trainer import Trainer

INFO = DataInfo("toy", 1, 16, 3, ["a", "b", "c"], [10, 30, 60])


def make_model(cls, **overrides):
    if cls is CGAN:  # these tests cover the DCGAN-style conditional nets (tests/test_paper_nets_cgan.py: the paper's)
        overrides.setdefault("arch", "dcgan")
    cfg = group_config("model", cls.__name__.lower(), ngf=4, ndf=4, **overrides)  # CGAN -> configs/model/cgan.yaml
    model = cls(cfg, INFO)
    model.configure_optimizers(lambda name, params: torch.optim.SGD(params, lr=0.0))
    return model


# ----------------------------------------------------------------------------- nets
@pytest.mark.parametrize("mode", ["concat", "multiply", "cbn"])
def test_generator_uses_the_label(mode):
    torch.manual_seed(0)
    G = ConditionalGenerator(8, 3, 1, 16, ngf=4, conditioning=mode, embed_dim=5)
    if mode == "cbn":  # CBN starts as plain BN: make the classes differ as training would
        for m in G.modules():
            if isinstance(m, ConditionalBatchNorm2d):
                torch.nn.init.normal_(m.beta.weight)
    z = torch.randn(4, 8)
    a, b = G(z, torch.zeros(4, dtype=torch.long)), G(z, torch.ones(4, dtype=torch.long))
    assert a.shape == (4, 1, 16, 16) and a.abs().max() <= 1
    assert not torch.allclose(a, b)


def test_conditional_batchnorm_starts_as_batchnorm():
    cbn, bn = ConditionalBatchNorm2d(6, 3), torch.nn.BatchNorm2d(6, affine=False)
    x, y = torch.randn(5, 6, 4, 4), torch.tensor([0, 1, 2, 1, 0])
    assert torch.allclose(cbn(x, y), bn(x), atol=1e-6)


def test_projection_discriminator_matches_hand_computation():
    torch.manual_seed(0)
    D = ConditionalDiscriminator(1, 3, 16, ndf=4, conditioning="projection")
    x, y = torch.randn(5, 1, 16, 16), torch.tensor([0, 1, 2, 1, 0])
    feats = D.base.features(x)
    expected = D.base.head(feats).flatten() + (D.embed(y) * feats.sum(dim=(2, 3))).sum(1)
    logit, classes = D.forward_with_classes(x, y)
    assert torch.allclose(logit, expected, atol=1e-5) and torch.allclose(D(x, y), expected, atol=1e-5)
    assert classes.shape == (5, 3)
    assert torch.allclose(classes.gather(1, y[:, None]).squeeze(1), (D.embed(y) * feats.sum(dim=(2, 3))).sum(1), atol=1e-5)


def test_concat_discriminator_and_aux_heads_shapes():
    D = ConditionalDiscriminator(3, 4, 32, ndf=4, conditioning="concat", embed_dim=7)
    assert D.base.trunk[0].in_channels == 3 + 7
    logit, classes = D.forward_with_classes(torch.randn(2, 3, 32, 32), torch.tensor([3, 0]))
    assert logit.shape == (2,) and classes is None
    adv, cls = AuxClassifierDiscriminator(3, 4, 32, ndf=4)(torch.randn(2, 3, 32, 32))
    assert adv.shape == (2,) and cls.shape == (2, 4)


def test_mlp_arch_is_the_peer_reimplementation_with_learned_label_embeddings():
    """arch=mlp (the digits preset): the layers of issue 20's MLP peer (scripts/peer_cgan.py), built from the preset."""
    torch.manual_seed(0)
    cfg = compose_cfg(["model=cgan", "data=digits"]).model
    info = DataInfo("digits", 1, 32, 10, [str(i) for i in range(10)], [1] * 10)
    G, D = CGAN.build_nets(cfg, info)
    linears = lambda net: [(m.in_features, m.out_features) for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert linears(G) == [(110, 128), (128, 256), (256, 512), (512, 1024), (1024, 1024)]
    assert linears(D) == [(1034, 512), (512, 512), (512, 512), (512, 1)]
    assert [m.num_features for m in G.modules() if isinstance(m, torch.nn.BatchNorm1d)] == [256, 512, 1024]
    assert [m.p for m in D.modules() if isinstance(m, torch.nn.Dropout)] == [0.4, 0.4, 0.4]
    assert G.embed.weight.shape == D.embed.weight.shape == (10, 10)
    G.eval()
    z = torch.randn(3, 100)
    a, b = G(z, torch.zeros(3, dtype=torch.long)), G(z, torch.ones(3, dtype=torch.long))
    assert a.shape == (3, 1, 32, 32) and a.abs().max() <= 1 and not torch.allclose(a, b)
    logit, classes = D.forward_with_classes(a, torch.tensor([0, 1, 2]))
    assert logit.shape == (3,) and classes is None
    with pytest.raises(GantrainError, match="model.arch=mlp joins the label"):
        make_model(CGAN, arch="mlp", d_conditioning="projection")


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ConditionalGenerator(8, 3, 1, 16, conditioning="film"), "model.g_conditioning"),
        (lambda: ConditionalGenerator(8, 3, 1, 16, norm="none", conditioning="cbn"), "norm_G=batch"),
        (lambda: ConditionalDiscriminator(1, 3, 16, conditioning="hidden"), "model.d_conditioning"),
    ],
)
def test_bad_conditioning_choices_fail_clearly(build, message):
    with pytest.raises(GantrainError, match=message):
        build()


# ----------------------------------------------------------------------------- labels and grids
def test_label_sampling_follows_data_or_uniform():
    assert torch.allclose(label_probabilities(INFO, "data"), torch.tensor([0.1, 0.3, 0.6]))
    assert torch.allclose(label_probabilities(INFO, "uniform"), torch.full((3,), 1 / 3))
    with pytest.raises(GantrainError, match="label_sampling"):
        label_probabilities(INFO, "balanced")
    torch.manual_seed(0)
    model = make_model(CGAN)
    share = torch.bincount(model.sample_labels(20000), minlength=3).float() / 20000
    assert torch.allclose(share, torch.tensor([0.1, 0.3, 0.6]), atol=0.02)


def test_fixed_inputs_give_one_row_per_class():
    assert grid_labels(9, 3).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert grid_labels(7, 3).tolist() == [0, 0, 1, 1, 2, 2, 0]
    model = make_model(ACGAN)
    inputs = model.fixed_inputs(6, torch.Generator().manual_seed(0))
    assert inputs["label"].tolist() == [0, 0, 1, 1, 2, 2] and inputs["z"].shape == (6, 100)
    grids = model.sample_grids(inputs)
    assert grids["samples"].shape == (6, 1, 16, 16) and model.grid_rows() == 2


def test_unlabelled_data_is_refused():
    info = DataInfo("celeba", 3, 64)
    with pytest.raises(GantrainError, match="has no labels"):
        CGAN(group_config("model", "cgan"), info)


# ----------------------------------------------------------------------------- losses
def capture_step(model, batch, seed=0):
    """Run train_step with optimiser steps replaced by capturing the losses (weights stay as they are)."""
    losses = {}
    model.update = lambda name, loss: losses.__setitem__(name, loss.detach())
    torch.manual_seed(seed)
    out = model.train_step(batch, 0)
    return losses, out


@pytest.mark.parametrize("fake_class_loss", [True, False])
def test_acgan_losses_match_hand_computation(fake_class_loss):
    model = make_model(ACGAN, class_weight=2.0, fake_class_loss=fake_class_loss)
    G, D = model.nets["G"], model.nets["D"]
    batch = {"image": torch.rand(6, 1, 16, 16) * 2 - 1, "label": torch.tensor([0, 1, 2, 2, 1, 0])}
    losses, out = capture_step(model, batch)
    torch.manual_seed(0)
    z, y_fake = model.sample_z(6), model.sample_labels(6)
    fake = G(z, y_fake)
    adv_r, cls_r = D(batch["image"])
    adv_f, cls_f = D(fake)
    bce = F.binary_cross_entropy_with_logits
    ce_real, ce_fake = F.cross_entropy(cls_r, batch["label"]), F.cross_entropy(cls_f, y_fake)
    expected_D = bce(adv_r, torch.ones(6)) + bce(adv_f, torch.zeros(6)) + 2.0 * (ce_real + (ce_fake if fake_class_loss else 0))
    expected_G = bce(adv_f, torch.ones(6)) + 2.0 * ce_fake
    assert torch.allclose(losses["D"], expected_D, atol=1e-5)
    assert torch.allclose(losses["G"], expected_G, atol=1e-5)
    assert torch.allclose(out["acc/D_class_real"], (cls_r.argmax(1) == batch["label"]).float().mean())


def test_cgan_losses_match_hand_computation():
    model = make_model(CGAN, d_conditioning="projection", loss="hinge")
    G, D = model.nets["G"], model.nets["D"]
    batch = {"image": torch.rand(6, 1, 16, 16) * 2 - 1, "label": torch.tensor([0, 1, 2, 2, 1, 0])}
    losses, out = capture_step(model, batch)
    torch.manual_seed(0)
    z, y_fake = model.sample_z(6), model.sample_labels(6)
    fake = G(z, y_fake)
    real_logit, fake_logit = D(batch["image"], batch["label"]), D(fake, y_fake)
    assert torch.allclose(losses["D"], F.relu(1 - real_logit).mean() + F.relu(1 + fake_logit).mean(), atol=1e-5)
    assert torch.allclose(losses["G"], -fake_logit.mean(), atol=1e-5)
    assert {"acc/D_class_real", "acc/D_class_fake"} <= set(out)


@pytest.mark.parametrize(
    "cls, extra",
    [
        (CGAN, dict(g_conditioning="cbn", d_conditioning="concat", loss="wgan-gp", norm_D="none", d_steps=2)),
        (CGAN, dict(g_conditioning="multiply", d_conditioning="projection", loss="wgan", augment="translation,cutout")),
        (CGAN, dict(arch="mlp", g_hidden=[8, 16], d_hidden=[16, 8], d_dropout=0.4, loss="lsgan", init_type="default")),
        (ACGAN, dict(g_conditioning="cbn", loss="lsgan", label_sampling="uniform")),
        (ACGAN, dict(loss="wgan-gp", norm_D="layer", augment="color,translation")),
    ],
)
def test_variants_train(cls, extra):
    model = make_model(cls, **extra)
    batch = {"image": torch.rand(4, 1, 16, 16) * 2 - 1, "label": torch.tensor([0, 1, 2, 1])}
    for step in range(2):
        out = model.train_step(batch, step)
    assert "G" in out and all(torch.isfinite(v) and v.dim() == 0 for v in out.values())


# ----------------------------------------------------------------------------- metric
class _ByBrightness(torch.nn.Module):
    """Stub classifier: class = round(mean pixel in [0, 2])."""

    def forward(self, x):
        k = x.mean(dim=(1, 2, 3)).add(1).round().clamp(0, 2).long()
        return F.one_hot(k, 3).double(), F.one_hot(k, 3).float()


def test_cond_accuracy_and_worst_class():
    from types import SimpleNamespace

    metric = object.__new__(ClassifierMetrics)  # the arithmetic only: no dataset, a stub classifier
    metric.backbone, metric.num_classes, metric.fd_ref, metric.accuracy = None, 3, 1.0, 1.0
    metric.real = {"pool": F.one_hot(torch.arange(30) % 3, 3).double() + 0.01 * torch.randn(30, 3).double()}
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    values = torch.tensor([-1.0, -1.0, 0.0, 1.0, 1.0, 1.0])  # classes 0, 0, 1, 2, 2, 2
    pool, logits = _ByBrightness()(values.view(6, 1, 1, 1).expand(6, 1, 4, 4))
    out = metric(SimpleNamespace(labels=labels, fake_features=lambda backbone: {"pool": pool, "logits": logits}))
    assert out["cond_accuracy"] == pytest.approx(5 / 6)
    assert out["cond_accuracy_worst_class"] == pytest.approx(0.5)


# ----------------------------------------------------------------------------- end to end
def run_training(overrides: list[str], run_dir: Path) -> Trainer:
    trainer = Trainer(validate_config(compose_cfg(TINY + overrides)), run_dir)
    trainer.setup(None)
    trainer.fit()
    return trainer


def test_digits_defaults_and_resume_exact(tmp_path):
    cfg = compose_cfg(["model=acgan"])
    assert (cfg.data.image_size, cfg.model.ngf, cfg.trainer.max_steps) == (16, 32, 1200)
    assert cfg.model.augment == "translation,cutout"
    cg = compose_cfg(["model=cgan"])
    assert (cg.data.image_size, cg.trainer.max_steps, cg.model.arch, cg.model.augment, cg.trainer.ema.decay) == (32, 10000, "mlp", "", 0.999)
    # constant LR: the digits default decays over max_steps, which differs between the full and half runs
    extra = ["model=acgan", "trainer.num_sample_images=20", "trainer.sample_every=2", "optim.schedule=constant"]
    full = run_training(extra + ["trainer.max_steps=6"], tmp_path / "full")
    run_training(extra + ["trainer.max_steps=3", "trainer.ckpt_every=3"], tmp_path / "half")
    resumed = Trainer(validate_config(compose_cfg(TINY + extra + ["trainer.max_steps=6"])), tmp_path / "half")
    resumed.setup(runs.load_newest_valid(tmp_path / "half")[1])
    resumed.fit()
    for name in full.model.nets:
        for key, value in full.model.nets[name].state_dict().items():
            assert torch.equal(value, resumed.model.nets[name].state_dict()[key]), f"{name}.{key}"
    ckpt = runs.load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    assert ckpt["data_info"]["class_names"] == [str(i) for i in range(10)]
    assert sum(ckpt["data_info"]["class_counts"]) == 1437
    grid = Image.open(tmp_path / "full" / "samples" / "samples_step_0000002.png")
    assert grid.size == (2 * 18 + 2, 10 * 18 + 2)  # 2 images per row, one row per class
    logged = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert "acc/D_class_real" in logged[-1] and "acc/D_class_fake" in logged[-1] and "loss/D" in logged[-1]


@pytest.fixture
def folder_run(tmp_path) -> Path:
    """A tiny cgan trained on an image folder whose classes are named 'cat', 'dog' and 'T/shirt'-like names."""
    root = tmp_path / "pets"
    for c, name in enumerate(["cat", "dog"]):
        (root / name).mkdir(parents=True)
        for i in range(12):
            Image.new("L", (16, 16), color=40 + 150 * c + i).save(root / name / f"{i}.png")
    run = tmp_path / "run"
    run_training(
        ["model=cgan", "data=image_folder", f"data.root={root}", "data.image_size=16", "data.channels=1",
         "data.batch_size=8", "data.test_fraction=0", "trainer.max_steps=2"],
        run,
    )
    info = runs.load_checkpoint(run / "checkpoints" / "last.pt")["data_info"]
    assert info["class_names"] == ["cat", "dog"] and info["class_counts"] == [12, 12]
    return run


def test_sample_cli_writes_image_folder_layout(folder_run, tmp_path):
    out = tmp_path / "samples"
    result = run_cli(["gantrain.cli.sample", str(folder_run), "--labels", "dog", "--num-per-class", "3", "--out", str(out), "--grid"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "dog/00000.png", "dog/00001.png", "dog/00002.png", "grid.png"
    ]
    bad = run_cli(["gantrain.cli.sample", str(folder_run), "--labels", "cat,cow", "--out", str(out)], tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (
        "error: unknown label(s) 'cow'; this model's classes are: 0=cat, 1=dog (pass names or indices, or --labels all)"
    )


def test_sample_cli_all_labels_grid_and_seeds(folder_run, tmp_path):
    sample_cli.main([str(folder_run), "--labels", "all", "--num-per-class", "2", "--out", str(tmp_path / "a"), "--grid"])
    assert Image.open(tmp_path / "a" / "grid.png").size == (2 * 18 + 2, 2 * 18 + 2)  # one row per class
    assert len(list((tmp_path / "a" / "cat").glob("*.png"))) == 2
    sample_cli.main([str(folder_run), "--labels", "1", "--num-per-class", "2", "--out", str(tmp_path / "b")])
    for i in range(2):  # a class's images do not depend on which other classes were asked for
        a = Image.open(tmp_path / "a" / "dog" / f"{i:05d}.png").tobytes()
        assert a == Image.open(tmp_path / "b" / "dog" / f"{i:05d}.png").tobytes()
    with pytest.raises(SystemExit):
        sample_cli.main([str(folder_run), "--num", "5", "--out", str(tmp_path / "c")])


def test_sample_cli_unconditional_unchanged(tiny_cfg, tmp_path, capsys):
    trainer = Trainer(validate_config(tiny_cfg(["trainer.max_steps=2"])), tmp_path / "run")
    trainer.setup(None)
    trainer.fit()
    sample_cli.main([str(tmp_path / "run"), "--num", "5", "--out", str(tmp_path / "u"), "--grid"])
    assert sorted(p.name for p in (tmp_path / "u").iterdir()) == [f"{i:05d}.png" for i in range(5)] + ["grid.png"]
    with pytest.raises(SystemExit) as info:
        sample_cli.main([str(tmp_path / "run"), "--labels", "3", "--out", str(tmp_path / "v")])
    assert info.value.code == 2 and "unconditional" in capsys.readouterr().err


def test_class_folder_names_are_safe():
    assert sample_cli.class_dir_names(["T-shirt/top", "T-shirt_top", ".."]) == ["T-shirt_top", "T-shirt_top_1", "class_2"]
    assert sample_cli.resolve_labels("airplane, 2,0", ["airplane", "automobile", "bird"]) == [0, 2]
