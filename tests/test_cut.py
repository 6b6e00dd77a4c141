"""CUT / FastCUT: PatchNCE, the official defaults, training, exact resume, one-directional translate and metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import TINY, compose_cfg, run_cli, run_metrics
from gantrain import runs
from gantrain.config.schema import validate_config
from gantrain.errors import GantrainError
from gantrain.nets.patchnce import PatchSampleMLP, patch_nce_loss
from gantrain.trainer.trainer import Trainer

SMALL = ["model.netG=resnet_2blocks", "model.nce_layers=[0,4,8,10,11]", "model.num_patches=16", "model.netF_nc=8"]


def cfg_for(model: str = "cut", extra: list[str] = ()):
    base = [o for o in TINY if not o.startswith("data.batch_size")]
    return validate_config(compose_cfg([f"model={model}", "data=digits2negative", *base, "data.batch_size=2",
                                        "model.ngf=4", "model.ndf=4", *SMALL, *extra]))


def train(cfg, run_dir: Path, resume: Path | None = None) -> Trainer:
    trainer = Trainer(cfg, run_dir)
    trainer.setup(runs.load_newest_valid(resume)[1] if resume else None)
    trainer.fit()
    return trainer


def test_patch_nce_matches_a_per_image_hand_computation():
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(2 * 3, 5, generator=g), dim=1)
    k = F.normalize(torch.randn(2 * 3, 5, generator=g), dim=1)
    want = []
    for img in range(2):  # negatives: the other patches of the same image only
        qi, ki = q[img * 3:(img + 1) * 3], k[img * 3:(img + 1) * 3]
        for p in range(3):
            others = [j for j in range(3) if j != p]
            logits = torch.cat([(qi[p] @ ki[p])[None], qi[p] @ ki[others].T]) / 0.07
            want.append(-torch.log_softmax(logits, 0)[0])
    got = patch_nce_loss(q, k, batch=2, temperature=0.07)
    # the masked diagonal (-10 / T) adds exp(-142.9) to the denominator: nothing at this precision
    torch.testing.assert_close(got, torch.stack(want), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(patch_nce_loss(q, k, batch=2, all_negatives_from_minibatch=True), got)
    # a query equal to its key scores a lower loss than a random one
    assert patch_nce_loss(k, k, batch=2).mean() < got.mean()


def test_patch_sampler_shares_positions_between_query_and_key():
    F_ = PatchSampleMLP([3, 6], nc=4)
    feats = [torch.randn(2, 3, 5, 5), torch.randn(2, 6, 4, 4)]
    out, ids = F_(feats, num_patches=7)
    assert [o.shape for o in out] == [(14, 4), (14, 4)] and [len(i) for i in ids] == [7, 7]
    again, ids2 = F_(feats, num_patches=7, patch_ids=ids)
    assert all(torch.equal(a, b) for a, b in zip(out, again))
    torch.testing.assert_close(out[0].norm(dim=1), torch.ones(14))


def test_official_defaults_and_presets():
    cut = validate_config(compose_cfg(["model=cut", "data=horse2zebra"]))
    m = cut.model
    assert (m.netG, m.netD, m.norm, m.init_type, m.loss, m.lambda_NCE, m.nce_idt, list(m.nce_layers), m.num_patches,
            m.netF_nc, m.nce_T, m.flip_equivariance) == (
        "resnet_9blocks", "basic", "instance", "xavier", "lsgan", 1.0, True, [0, 4, 8, 12, 16], 256, 256, 0.07, False)
    assert not m.nce_includes_all_negatives_from_minibatch
    assert (cut.trainer.max_epochs, cut.optim.decay_epochs, cut.optim.lr) == (400, 200, 2e-4)
    fast = validate_config(compose_cfg(["model=fastcut", "data=horse2zebra"]))
    assert (fast.model.lambda_NCE, fast.model.nce_idt, fast.model.flip_equivariance) == (10.0, False, True)
    assert (fast.trainer.max_epochs, fast.optim.decay_epochs, fast.model.lambda_GAN) == (200, 50, 1.0)
    # the digits preset raises only lambda_GAN (D won the game at FastCUT's NCE weight); FastCUT's own keys stay
    tiny = validate_config(compose_cfg(["model=fastcut", "data=digits2edges"])).model
    assert (tiny.lambda_GAN, tiny.lambda_NCE, tiny.nce_idt, tiny.flip_equivariance) == (10.0, 10.0, False, True)
    preset = validate_config(compose_cfg(["model=cut", "data=digits2edges"]))
    assert preset.model.netG == "resnet_6blocks" and list(preset.model.nce_layers) == [0, 4, 8, 12, 14]
    assert "translation" in run_metrics(preset)


def test_heads_exist_from_the_start_and_bad_settings_are_one_line_errors():
    from gantrain.models.cut import CUT

    from gantrain.data.base import DataInfo

    cfg = cfg_for("cut")
    net = CUT(cfg.model, DataInfo("x", 1, 32))
    widths = [mlp[0].in_features for mlp in net.nets["F"].mlps]
    assert widths == [1, 8, 16, 16, 16]  # padded input, the two down convs (ngf 4: 8, 16), two residual blocks
    for bad, msg in ((["model.netG=unet_32"], "taps a ResNet"), (["model.nce_layers=[0,12]"], "reach into the decoder"),
                     (["model.loss=wgangp"], "lsgan, vanilla or hinge")):
        with pytest.raises(GantrainError, match=msg):
            CUT(cfg_for("cut", bad).model, DataInfo("x", 1, 32))


@pytest.mark.parametrize("model,logged", [("cut", {"D", "G_GAN", "NCE", "NCE_Y"}), ("fastcut", {"D", "G_GAN", "NCE"})])
def test_trains_logs_and_grids(model, logged, tmp_path):
    trainer = train(cfg_for(model, ["trainer.max_steps=3"]), tmp_path)
    seen = set()
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines():
        seen |= {k[5:] for k in json.loads(line) if k.startswith("loss/")}
    assert seen == logged
    grids = trainer.model.sample_grids(trainer.fixed)
    assert list(grids) == ["real_A", "fake_B", "real_B", "idt_B"] and grids["fake_B"].shape == (8, 1, 32, 32)


def test_resume_is_exact_including_heads(tmp_path):
    full = train(cfg_for("fastcut", ["trainer.max_steps=4", "trainer.ckpt_every=0"]), tmp_path / "full")
    train(cfg_for("fastcut", ["trainer.max_steps=2"]), tmp_path / "half")
    resumed = train(cfg_for("fastcut", ["trainer.max_steps=4"]), tmp_path / "half", resume=tmp_path / "half")
    assert set(full.model.nets) == {"G_A", "D_A", "F"}
    for name, net in full.model.nets.items():
        for key, value in net.state_dict().items():
            assert torch.equal(value, resumed.model.nets[name].state_dict()[key]), f"{name}.{key}"


def test_flip_equivariance_flips_queries_back_onto_the_unflipped_keys():
    """FastCUT (official calculate_NCE_loss): keys are the unflipped input's features, queries come from the
    output of the flipped input and are flipped back, so a translation that commutes with the flip scores as
    if nothing had been flipped, and a query left mirrored does not."""
    from gantrain.data.base import DataInfo
    from gantrain.models.cut import CUT

    model = CUT(cfg_for("fastcut").model, DataInfo("x", 1, 32))
    g = torch.Generator().manual_seed(0)
    keys = [torch.randn(2, c, 6, 6, generator=g) for c in (1, 8, 16, 16, 16)]
    mirrored = [torch.flip(k, [3]) for k in keys]

    def nce(q, flipped):
        torch.manual_seed(0)  # the same patch positions each time
        return model._nce(q, keys, flipped)

    torch.testing.assert_close(nce(mirrored, True), nce(keys, False))
    assert nce(mirrored, False) > nce(keys, False) + 1.0


def test_batched_encoder_and_d_calls_match_one_call_each():
    """Batching is an optimisation only: the same losses from the same weights and random draws."""
    import copy

    from gantrain.data.base import DataInfo
    from gantrain.models.cut import CUT
    from gantrain.trainer.optim import build_optimizer

    cfg = cfg_for("cut", ["model.flip_equivariance=true"])
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(2, 1, 32, 32, generator=g) * 2 - 1 for k in "AB"}
    losses = []
    for batched in (True, False):
        torch.manual_seed(0)
        model = CUT(cfg.model, DataInfo("x", 1, 32))
        model.batched = batched
        model.configure_optimizers(lambda n, p: build_optimizer(n, p, cfg.optim, torch.device("cpu")))
        losses.append(model.train_step(copy.deepcopy(batch), 0))
    for key, value in losses[0].items():
        torch.testing.assert_close(value, losses[1][key], rtol=1e-4, atol=1e-6)


def test_translate_is_atob_only_and_metrics_report_atob_keys(tmp_path, monkeypatch):
    from gantrain.metrics.translation import TranslationMetrics

    run = tmp_path / "run"
    trainer = train(cfg_for("cut", ["trainer.max_steps=2"]), run)
    Image.new("L", (30, 34), 200).save(tmp_path / "a.png")
    ok = run_cli(["gantrain.cli.translate", str(run), "--input", str(tmp_path / "a.png"), "--out", str(tmp_path / "o"),
                  "--device", "cpu"], cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert Image.open(tmp_path / "o" / "a.png").size == (30, 34)
    bad = run_cli(["gantrain.cli.translate", str(run), "--input", str(tmp_path / "a.png"), "--out", str(tmp_path / "p"),
                   "--direction", "BtoA", "--device", "cpu"], cwd=tmp_path)
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert bad.returncode == 2 and len(errors) == 1 and "one-directional" in errors[0] and "Traceback" not in bad.stderr

    # classifiers replaced by a fixed random projection (no classifier training here): only the keys are checked
    proj = torch.randn(32 * 32, 10, generator=torch.Generator().manual_seed(0))

    def classify(net, x, device):
        feats = x.flatten(1) @ proj
        return feats, feats

    monkeypatch.setattr("gantrain.metrics.translation.classify", classify)
    monkeypatch.setattr(TranslationMetrics, "_classifier", lambda self, side: (None, {"test_accuracy": 1.0}))
    metric = TranslationMetrics.__new__(TranslationMetrics)
    metric.cfg, metric.data, metric.info, metric.device = trainer.cfg, trainer.data, trainer.info, torch.device("cpu")
    metrics = metric.evaluate(trainer.model, None)
    assert {"paired_L1_AtoB", "class_acc_AtoB", "cls_fd_AtoB", "cls_kid_AtoB", "n_test_A"} <= set(metrics)
    assert not any("BtoA" in k or "cycle" in k for k in metrics)
