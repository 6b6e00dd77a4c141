"""DiscoGAN's default networks and recipe at the paper's 64 px, against the official code (SKTBrain/DiscoGAN at
commit ce8b4fb; files and lines in each docstring) and the paper (Kim et al. 2017, arXiv 1703.05192)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import OmegaConf

from conftest import compose_cfg
from gantrain.config.schema import group_config, validate_config
from gantrain.data.base import DataInfo
from gantrain.errors import GantrainError
from gantrain.models.discogan import DiscoGAN, _features, feature_matching
from gantrain.trainer.optim import build_optimizer
from gantrain.runs import build_model

# Official counts, by hand from discogan/model.py (every conv 4x4 and bias-free; BN weight + bias per channel).
# Generator(extra_layers=False), lines 101-126: convs 3-64-128-256-512, transposed convs 512-256-128-64-3, BN on all
# but the first conv and the output layer.
OFFICIAL_G = 16 * (3 * 64 + 64 * 128 + 128 * 256 + 256 * 512 + 512 * 256 + 256 * 128 + 128 * 64 + 64 * 3) \
    + 2 * (128 + 256 + 512) + 2 * (256 + 128 + 64)  # 5,513,856
# extra_layers=True (lines 67-98) adds Conv2d(512, 100, 4) + BN(100) and ConvTranspose2d(100, 512, 4) + BN(512).
OFFICIAL_G_EXTRA = OFFICIAL_G + 2 * 16 * 512 * 100 + 2 * (100 + 512)
# Discriminator, lines 16-37: convs 3-64-128-256-512 (BN on the last three) and a 4x4 conv to one output.
OFFICIAL_D = 16 * (3 * 64 + 64 * 128 + 128 * 256 + 256 * 512 + 512 * 1) + 2 * (128 + 256 + 512)  # 2,765,568
# gantrain keeps a bias on the first conv and the output layer: 64 + 3 in G, 64 + 1 in D.
G_BIAS, D_BIAS = 64 + 3, 64 + 1


def _params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _out_channels(net: nn.Module, kind: type) -> list[int]:
    return [m.out_channels for m in net.modules() if isinstance(m, kind)]


def test_default_is_the_official_generator_and_discriminator_at_64px():
    """SKTBrain/DiscoGAN discogan/model.py: Generator(extra_layers=False) lines 101-126 (the default, line 62),
    Discriminator lines 16-57; the image size of 64 from discogan/image_translation.py line 23 ("64 for every
    experiment in the paper")."""
    cfg = validate_config(compose_cfg(["model=discogan", "data=edges2shoes"]))
    assert (cfg.model.bottleneck, cfg.model.code_size, cfg.model.ngf, cfg.model.ndf, cfg.model.norm) == (0, 4, 64, 64, "batch")
    model = build_model(cfg, DataInfo("edges2shoes", 3, 64))
    for name in ("G_A", "G_B"):
        G = model.nets[name]
        assert _out_channels(G.encoder, nn.Conv2d) == [64, 128, 256, 512]
        assert _out_channels(G.decoder, nn.ConvTranspose2d) == [256, 128, 64, 3]
        assert [m.kernel_size for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))] == [(4, 4)] * 8
        assert sum(isinstance(m, nn.BatchNorm2d) for m in G.modules()) == 6
        assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in G.modules())
        assert _params(G) == OFFICIAL_G + G_BIAS == 5_513_923
        x = torch.randn(2, 3, 64, 64)
        assert G.encoder(x).shape == (2, 512, 4, 4)  # the 4x4x512 map is the code
        assert G(x).shape == (2, 3, 64, 64)
    for name in ("D_A", "D_B"):
        D = model.nets[name]
        assert _out_channels(D, nn.Conv2d) == [64, 128, 256, 512, 1]
        assert _params(D) == OFFICIAL_D + D_BIAS == 2_765_633
        logits, feats = _features(D, torch.randn(2, 3, 64, 64))
        # the official forward returns [relu2, relu3, relu4] (model.py line 57) for feature matching
        assert logits.shape == (2,) and [tuple(f.shape[1:]) for f in feats] == [(128, 16, 16), (256, 8, 8), (512, 4, 4)]


def test_the_official_1x1_code_is_an_option():
    """discogan/model.py lines 67-98, Generator(extra_layers=True): a 4x4 conv to a 1x1x100 code and its transpose."""
    cfg = validate_config(compose_cfg(["model=discogan", "data=edges2shoes", "model.bottleneck=100"]))
    G = build_model(cfg, DataInfo("edges2shoes", 3, 64)).nets["G_A"]
    assert G.encoder(torch.randn(2, 3, 64, 64)).shape == (2, 100, 1, 1)
    assert _params(G) == OFFICIAL_G_EXTRA + G_BIAS


def test_recipe_is_the_official_optimiser_batch_and_64px_on_folder_data():
    """discogan/image_translation.py lines 18-19 (batch 64, lr 2e-4), 23 (64 px) and 172-173 (Adam betas (0.5, 0.999),
    weight_decay 1e-5 for G and D); dataset.py read_images resizes to 64 px without crop or flip. The embedded 32 px
    digit sets keep their size, and other families keep the folder data's 286/256."""
    for data in ("edges2shoes", "unpaired_folder", "horse2zebra", "aligned_folder"):
        cfg = validate_config(compose_cfg(["model=discogan", f"data={data}"]))
        o, d = cfg.optim, cfg.data
        assert (o.name, o.lr, list(o.betas), o.weight_decay, o.schedule) == ("adam", 2e-4, [0.5, 0.999], 1e-5, "constant")
        assert (d.batch_size, d.load_size, d.crop_size, d.flip) == (64, 64, 64, False)
    assert validate_config(compose_cfg(["model=discogan", "data=horse2zebra", "data.crop_size=32"])).data.crop_size == 32
    assert validate_config(compose_cfg(["model=cyclegan", "data=horse2zebra"])).data.load_size == 286
    assert "load_size" not in validate_config(compose_cfg(["model=discogan", "data=digits2negative"])).data


def test_digits_presets_pin_what_their_recorded_figures_used():
    """BENCHMARKS.md's DiscoGAN digits2negative figures were measured with the 4x4 code, ngf/ndf 16 and the
    unhalved D loss; the presets keep all three."""
    for data in ("digits2negative", "digits2edges"):
        m = validate_config(compose_cfg(["model=discogan", f"data={data}"])).model
        assert (m.bottleneck, m.ngf, m.ndf, m.d_loss_weight, m.official_mix) == (0, 16, 16, 1.0, False)
    m = validate_config(compose_cfg(["model=discogan", "data=edges2shoes"])).model
    assert (m.d_loss_weight, m.fm_reduction) == (0.5, "sum")


def test_feature_matching_sums_the_per_layer_hinge_embedding_terms():
    """discogan/image_translation.py lines 76-83 (get_fm_loss): per layer, HingeEmbeddingLoss(target 1) of the squared
    difference of the batch-mean features, i.e. its mean, summed over the layers. By hand: layer 1 batch means 2 and 0,
    (2 - 0)^2 = 4; layer 2 means (1, 0) and (0, 0), mean of (1, 0) = 0.5; sum 4.5, mean over layers 2.25."""
    real = [torch.tensor([1.0, 3.0]).view(2, 1, 1, 1), torch.tensor([[2.0, 1.0], [0.0, -1.0]]).view(2, 2, 1, 1)]
    fake = [torch.zeros(2, 1, 1, 1), torch.zeros(2, 2, 1, 1)]
    assert feature_matching(real, fake).item() == pytest.approx(4.5)
    assert feature_matching(real, fake, "mean").item() == pytest.approx(2.25)
    hinge = nn.HingeEmbeddingLoss()
    official = sum(hinge((r.mean(0) - f.mean(0)) ** 2, torch.ones_like(r.mean(0))) for r, f in zip(real, fake))
    assert feature_matching(real, fake).item() == pytest.approx(official.item())


def _tiny(**overrides) -> DiscoGAN:
    cfg = group_config("model", "discogan", ngf=4, ndf=4, **overrides)
    model = DiscoGAN(cfg, DataInfo("t", 1, 32))
    optim = OmegaConf.create({"name": "adam", "lr": 2e-4, "lr_D": None, "betas": [0.5, 0.999], "eps": 1e-8,
                              "weight_decay": 0.0, "fused": None})
    model.configure_optimizers(lambda n, p: build_optimizer(n, p, optim, torch.device("cpu")))
    return model


@pytest.mark.parametrize("weight", [0.5, 1.0])
def test_d_loss_is_halved_as_the_official_code_halves_it(weight):
    """discogan/image_translation.py line 95: dis_loss = BCE(real, 1) * 0.5 + BCE(fake, 0) * 0.5 per discriminator.
    By hand: with D's output layer zeroed every logit is 0, each BCE term is ln 2, so D_A's loss is 0.5 * 2 ln 2 =
    ln 2 (the paper's unhalved sum, d_loss_weight 1: 2 ln 2)."""
    model = _tiny(d_loss_weight=weight)
    for name in ("D_A", "D_B"):
        nn.init.zeros_(model.nets[name].head.weight)
        nn.init.zeros_(model.nets[name].head.bias)
    a, b = torch.rand(4, 1, 32, 32) * 2 - 1, torch.rand(4, 1, 32, 32) * 2 - 1
    out = model.train_step({"A": a, "B": b}, 0)
    for name in ("D_A", "D_B"):
        assert out[name].item() == pytest.approx(weight * 2 * math.log(2), rel=1e-6)


def test_official_mix_uses_the_summed_feature_matching():
    """discogan/image_translation.py get_fm_loss (lines 76-83) on D's relu2..relu4 (model.py line 57): the logged
    fm terms are the sums over D's layers, computed here from the nets before the step."""
    model = _tiny(official_mix=True)
    before = copy.deepcopy(model.nets)
    a, b = torch.rand(4, 1, 32, 32) * 2 - 1, torch.rand(4, 1, 32, 32) * 2 - 1
    out = model.train_step({"A": a, "B": b}, 0)
    with torch.no_grad():
        fake_b = before["G_A"](a)
        _, real_feats = _features(before["D_A"], b)
        _, fake_feats = _features(before["D_A"], fake_b)
        assert len(real_feats) == 2  # relu2, relu3 at 32 px
        by_layer = [F.mse_loss(r.mean(0), f.mean(0)) for r, f in zip(real_feats, fake_feats)]
    torch.testing.assert_close(out["fm_A"], sum(by_layer))


def test_bad_fm_reduction_and_d_loss_weight_are_one_line_errors():
    with pytest.raises(GantrainError, match="model.fm_reduction=max is not valid; choose sum or mean"):
        _tiny(fm_reduction="max")
    with pytest.raises(GantrainError, match="model.d_loss_weight=0.0 is not valid"):
        _tiny(d_loss_weight=0.0)
