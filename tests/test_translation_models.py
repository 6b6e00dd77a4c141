"""The translation families (CycleGAN, DualGAN, DiscoGAN, UNIT), their configs, metrics and gantrain-translate."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY, compose_cfg, data_cfg, run_cli
from gantrain.metrics.base import EvalSetup
from gantrain.config.schema import group_config, validate_config
from gantrain import runs
from gantrain.errors import GantrainError
from gantrain.metrics.frechet import kid_from_features
from gantrain.metrics.translation import TranslationMetrics
from gantrain.trainer.trainer import Trainer

SMALL = {
    "cyclegan": ["model.netG=resnet_2blocks", "model.pool_size=3"],
    "dualgan": ["model.netG=unet_32", "model.d_steps=2"],
    "discogan": ["model.official_mix=true", "model.curriculum_iters=2"],
    "unit": ["model.n_res=1", "model.netD=basic"],
}


def cfg_for(model: str, extra: list[str] = ()):
    base = [o for o in TINY if not o.startswith("data.batch_size")]
    return validate_config(compose_cfg([f"model={model}", "data=digits2negative", *base, "data.batch_size=2",
                                        "model.ngf=4", "model.ndf=4", *SMALL[model], *extra]))


def train(cfg, run_dir: Path, resume: Path | None = None) -> Trainer:
    trainer = Trainer(cfg, run_dir)
    trainer.setup(runs.load_newest_valid(resume)[1] if resume else None)
    trainer.fit()
    return trainer


@pytest.mark.parametrize("model,logged", [
    ("cyclegan", {"D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"}),
    ("dualgan", {"D_A", "D_B", "G_A", "G_B", "recon_A", "recon_B"}),
    ("discogan", {"D_A", "D_B", "G_A", "G_B", "recon_A", "recon_B", "fm_A", "fm_B"}),
    ("unit", {"D_A", "D_B", "G_A", "G_B", "recon_A", "recon_B", "cycle_A", "cycle_B", "kl_A", "kl_B"}),
])
def test_family_trains_logs_and_translates(model, logged, tmp_path):
    identity = ["model.lambda_identity=0.5"] if model == "cyclegan" else []  # the digits preset turns it off
    trainer = train(cfg_for(model, ["trainer.max_steps=3", *identity]), tmp_path)
    seen = set()
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines():
        seen |= {k[5:] for k in __import__("json").loads(line) if k.startswith("loss/")}
    assert logged <= seen
    grids = trainer.model.sample_grids(trainer.fixed)
    assert list(grids) == ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"]
    assert grids["fake_B"].shape == (8, 1, 32, 32)
    assert any((tmp_path / "samples").rglob("*.png")) or any((tmp_path / "tensorboard").rglob("*"))


def test_paper_defaults_and_digits_preset():
    cfg = validate_config(compose_cfg(["model=cyclegan", "data=horse2zebra"]))
    m, o, t, d = cfg.model, cfg.optim, cfg.trainer, cfg.data
    assert (m.netG, m.netD, m.norm, m.loss, m.pool_size, m.dropout) == ("resnet_9blocks", "basic", "instance", "lsgan", 50, False)
    assert (m.lambda_A, m.lambda_B, m.lambda_identity, m.ngf, m.ndf, m.init_gain) == (10, 10, 0.5, 64, 64, 0.02)
    assert (o.name, o.lr, list(o.betas), o.schedule, o.decay_epochs, t.max_epochs) == ("adam", 2e-4, [0.5, 0.999], "epoch_linear", 100, 200)
    assert (d.batch_size, d.load_size, d.crop_size, d.preprocess, d.flip) == (1, 286, 256, "resize_and_crop", True)
    small = validate_config(compose_cfg(["model=cyclegan", "data=digits2negative"]))
    assert small.model.ngf < 64 and small.trainer.max_epochs < 200 and small.optim.schedule == "linear_decay"
    assert small.model.lambda_identity == 0.0  # the identity term trapped 3 of 4 seeds on digit negation
    assert validate_config(compose_cfg(["model=dualgan", "data=horse2zebra"])).optim.name == "rmsprop_tf"


def test_dualgan_digits_preset_keeps_the_paper_game():
    """The digits2negative preset shrinks the nets but trains the paper's WGAN game (clipping, several critic steps)."""
    cfg = validate_config(compose_cfg(["model=dualgan", "data=digits2negative"]))
    m = cfg.model
    assert (m.loss, m.clip_value, m.d_steps, m.lambda_A, m.lambda_B, m.recon) == ("wgan", 0.02, 3, 200, 200, "l1")
    assert (cfg.optim.name, m.netG, m.norm, cfg.trainer.max_epochs) == ("rmsprop", "unet_32", "none", 30)


def test_discogan_paper_generator_default_and_digits_preset(tmp_path):
    cfg = validate_config(compose_cfg(["model=discogan", "data=horse2zebra"]))
    assert (cfg.model.bottleneck, cfg.model.code_size, cfg.model.ngf, cfg.data.batch_size) == (0, 4, 64, 64)
    for data in ("digits2negative", "digits2edges"):
        small = validate_config(compose_cfg(["model=discogan", f"data={data}"]))
        assert (small.model.bottleneck, small.model.code_size, small.model.loss, small.model.lambda_recon) == (0, 4, "bce", 1.0)
        assert small.data.batch_size == 64
    trainer = Trainer(cfg_for("discogan", ["trainer.max_steps=1", "model.bottleneck=0", "model.code_size=8"]), tmp_path)
    trainer.setup()
    G = trainer.model.nets["G_A"]
    assert G.encoder(torch.zeros(2, 1, 32, 32)).shape == (2, 8, 8, 8)  # ngf 4 -> 8 channels on an 8x8 map


def test_cyclegan_losses_match_hand_computation():
    from gantrain.data.base import DataInfo
    from gantrain.models.cyclegan import CycleGAN
    from omegaconf import OmegaConf
    from gantrain.trainer.optim import build_optimizer

    cfg = group_config("model", "cyclegan", netG="resnet_1blocks", ngf=4, ndf=4)
    model = CycleGAN(cfg, DataInfo("t", 1, 32))
    optim = OmegaConf.create({"name": "adam", "lr": 2e-4, "lr_D": None, "betas": [0.5, 0.999], "eps": 1e-8, "weight_decay": 0.0, "fused": None})
    model.configure_optimizers(lambda n, p: build_optimizer(n, p, optim, torch.device("cpu")))
    before = copy.deepcopy(model.nets)
    a, b = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
    out = model.train_step({"A": a, "B": b}, 0)
    with torch.no_grad():
        n = before
        fake_b, fake_a = n["G_A"](a), n["G_B"](b)
        torch.testing.assert_close(out["G_A"], (n["D_A"](fake_b) - 1).pow(2).mean())
        torch.testing.assert_close(out["cycle_A"], 10 * (n["G_B"](fake_b) - a).abs().mean())
        torch.testing.assert_close(out["cycle_B"], 10 * (n["G_A"](fake_a) - b).abs().mean())
        torch.testing.assert_close(out["idt_A"], 5 * (n["G_A"](b) - b).abs().mean())  # effective weight 5
        torch.testing.assert_close(out["idt_B"], 5 * (n["G_B"](a) - a).abs().mean())
        # D after the G step sees the pool's first fakes (made before that step), loss halved
        d_a = 0.5 * ((n["D_A"](b) - 1).pow(2).mean() + n["D_A"](fake_b).pow(2).mean())
        torch.testing.assert_close(out["D_A"], d_a, rtol=1e-4, atol=1e-5)


def test_cyclegan_resume_is_exact_with_pool(tmp_path):
    full = train(cfg_for("cyclegan", ["trainer.max_steps=6", "trainer.ckpt_every=0"]), tmp_path / "full")
    train(cfg_for("cyclegan", ["trainer.max_steps=3"]), tmp_path / "half")
    resumed = train(cfg_for("cyclegan", ["trainer.max_steps=6"]), tmp_path / "half", resume=tmp_path / "half")
    for name, net in full.model.nets.items():
        for key, value in net.state_dict().items():
            assert torch.equal(value, resumed.model.nets[name].state_dict()[key]), f"{name}.{key}"
    assert torch.equal(full.model.pool_A.images, resumed.model.pool_A.images)


def test_kid_is_near_zero_for_same_distribution():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g)
    kid = lambda a, b: kid_from_features(a, b, subsets=5, subset_size=1000, seed=0)[0]  # noqa: E731 - all 200: exact
    same, shifted = kid(x, y), kid(x, y + 1)
    assert abs(same) < 0.1 and shifted > 20 * abs(same)


@pytest.mark.slow  # trains two digit classifiers (~40 s on a quiet CPU)
def test_translation_metrics_on_an_oracle(classifier_cache):
    """A model that applies the true map scores the classifier's own accuracy and zero paired error."""
    from gantrain.data.digit_domains import Digits2Negative
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"eval": {"split": "test", "batch_size": 400, "classifier_cache": classifier_cache,
                                     "kid_subsets": 10, "kid_subset_size": 1000, "seed": 0}})
    data = Digits2Negative(data_cfg("digits2negative"))

    class Oracle:
        rt = type("rt", (), {"device": torch.device("cpu")})()
        directions = ("AtoB", "BtoA")

        def translate(self, x, direction, nets=None):
            return -x  # 1 - x in [0, 1] is -x in [-1, 1]

    oracle = Oracle()
    out = TranslationMetrics(EvalSetup(cfg, data, oracle, torch.device("cpu"))).evaluate(oracle, None)
    assert out["paired_L1_AtoB"] < 1e-6 and out["cycle_L1_A"] < 1e-6 and out["n_test_A"] == 360
    assert out["class_acc_AtoB"] == pytest.approx(out["classifier_test_accuracy"], abs=1e-6)
    assert out["class_acc_BtoA"] > 0.9 and out["cls_fd_AtoB"] < 1.0


def _reference_style_file(path: Path) -> torch.nn.Module:
    """A generator saved like the reference does, with DDP prefixes and pre-0.4 InstanceNorm statistics."""
    from gantrain.nets.generators import build_generator
    from gantrain.nets.init import init_weights

    net = init_weights(build_generator("resnet_6blocks", 3, 3, ngf=4), "normal", 0.2)
    sd = {f"module.{k}": v for k, v in net.state_dict().items()}
    sd["module.model.2.running_mean"] = torch.zeros(4)  # stale InstanceNorm buffers that old files carry
    sd["module.model.2.running_var"] = torch.ones(4)
    torch.save(sd, path)
    return net.eval()


def test_translate_cli_run_and_reference_weights(tmp_path):
    run = tmp_path / "run"
    train(cfg_for("cyclegan", ["trainer.max_steps=2"]), run)
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    Image.new("L", (30, 34), 200).save(inputs / "a.png")
    Image.new("RGB", (20, 20), (10, 200, 30)).save(inputs / "sub" / "b.JPG")
    res = run_cli(["gantrain.cli.translate", str(run), "--input", str(inputs), "--out", str(tmp_path / "out"),
                   "--direction", "BtoA", "--device", "cpu"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    a, b = Image.open(tmp_path / "out" / "a.png"), Image.open(tmp_path / "out" / "sub" / "b.JPG")
    assert (a.size, a.mode, b.size, b.mode) == ((30, 34), "L", (20, 20), "L")  # own size, the domain's channels
    # reference generator files: same output as the net that wrote them
    net = _reference_style_file(tmp_path / "horse2zebra.pth")
    img = (np.random.default_rng(0).random((24, 28, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(inputs / "c.png")
    res = run_cli(["gantrain.cli.translate", "--weights", str(tmp_path / "horse2zebra.pth"), "--arch", "resnet_6blocks",
                   "--input", str(inputs / "c.png"), "--out", str(tmp_path / "ref"), "--device", "cpu"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    with torch.no_grad():
        want = net(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1)[0]
    got = torch.from_numpy(np.asarray(Image.open(tmp_path / "ref" / "c.png"))).permute(2, 0, 1).float() / 127.5 - 1
    assert (got - want.clamp(-1, 1)).abs().max() <= 1 / 127.5 + 1e-6  # equal up to 8-bit rounding
    res = run_cli(["gantrain.cli.translate", "--weights", str(tmp_path / "horse2zebra.pth"), "--arch", "resnet_9blocks",
                   "--input", str(inputs), "--out", str(tmp_path / "bad"), "--device", "cpu"], cwd=tmp_path)
    assert res.returncode == 2 and "does not fit --arch resnet_9blocks" in res.stderr and res.stderr.count("\n") == 1


@pytest.mark.parametrize("identity", [0.5, 0.0])
def test_cyclegan_batched_forwards_match_the_reference_order(identity, tmp_path):
    """Batching G/D calls is an optimisation only: the same weights as one call per image.

    SGD, not Adam: Adam's first steps are +-lr for any gradient, so the float noise in the gradient of a conv bias
    that instance norm cancels (mathematically zero) would show up as a difference of 2 lr. fp32: under bf16 (what
    `auto` picks on CPUs with native bf16) a kernel's rounding depends on the batch it is given.
    """
    results = []
    for batched in (True, False):
        extra = ["trainer.max_steps=2", f"model.batch_forwards={str(batched).lower()}", f"model.lambda_identity={identity}",
                 "optim.name=sgd", "optim.lr=0.01", "trainer.precision=32"]
        trainer = train(cfg_for("cyclegan", extra), tmp_path / str(batched))
        results.append(trainer.model.nets.state_dict())
    for key, value in results[0].items():
        torch.testing.assert_close(value, results[1][key], rtol=1e-4, atol=1e-5, msg=key)


def test_discogan_batch_one_with_a_batch_norm_code_is_a_clear_error(tmp_path):
    cfg = cfg_for("discogan", ["trainer.max_steps=1", "model.bottleneck=100", "model.norm=batch", "data.batch_size=1"])
    with pytest.raises(GantrainError, match="data.batch_size of at least 2"):
        train(cfg, tmp_path)
