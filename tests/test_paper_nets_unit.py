"""UNIT's default networks and recipe at the official crop size (640x480), against the official paper-version code
(mingyuliutw/UNIT, stored commit 3a68c41 for src/trainers/cocogan_nets.py and common_net.py; line numbers as stored)."""

from __future__ import annotations

import copy
import shutil

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import compose_cfg
from gantrain.config.schema import validate_config
from gantrain.data.base import DataInfo
from gantrain.errors import GantrainError
from gantrain.nets.multiscale import MultiScaleDiscriminator
from gantrain import runs
from gantrain.runs import build_model
from test_reproducibility import NARROW, assert_same_checkpoint, train

OFFICIAL = ["model=unit", "data=unpaired_folder"]


def _params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _kinds(net: nn.Module) -> list[str]:
    return [type(m).__name__ for m in net.modules() if not isinstance(m, (nn.Sequential, nn.ModuleList))]


def test_unit_default_is_the_official_street_scene_network():
    """exps/unit_local/sunny2rainy.yaml lines 19-36: gen COCOResGen2 (ch 64, n_enc_front_blk 3, n_enc_res_blk 3, one
    shared block each side, n_gen_res_blk 3, n_gen_front_blk 3, res_dropout_ratio 0.5), dis COCOMsDis (ch 64, n_layer 4);
    crops 480x640 (lines 41-42). cocogan_nets.py COCOResGen2 lines 262-326: LeakyReLUConv2d k7 s1 p3, two k3 s2 p1
    (line 288), INSResBlock, LeakyReLUConvTranspose2d k3 s2 p1 op1 (line 321), ConvTranspose2d k1 to the image (line
    324), Tanh. COCOMsDis lines 57-123: three nets, each LeakyReLUConv2d k3 s2 p1 doubling from ch (lines 76-80) and a
    1x1 conv (line 81). common_net.py: INSResBlock lines 82-103 (zero-padded conv3x3, InstanceNorm, ReLU, conv3x3,
    InstanceNorm, Dropout last), LeakyReLUConv2d lines 108-117 (nn.LeakyReLU(), slope 0.01, no norm).
    Counts (3 channels): E 3*64*49+64 + 64*128*9+128 + 128*256*9+256 + 3 * 2 * (256*256*9+256) = 3,918,976; a shared
    block 1,180,160; G 3 * 1,180,160 + 256*128*9+128 + 128*64*9+64 + 64*3+3 = 3,909,507; D per scale 3*64*9+64 +
    64*128*9+128 + 128*256*9+256 + 256*512*9+512 + 512+1 = 1,551,489, three scales 4,654,467."""
    cfg = validate_config(compose_cfg(OFFICIAL))
    model = build_model(cfg, DataInfo("unpaired_folder", 3, 256))
    n = model.nets
    counts = {k: _params(v) for k, v in n.items()}
    assert counts == {"E_A": 3_918_976, "E_B": 3_918_976, "E_shared": 1_180_160, "G_shared": 1_180_160,
                      "G_A": 3_909_507, "G_B": 3_909_507, "D_A": 4_654_467, "D_B": 4_654_467}
    enc, dec = n["E_A"], n["G_A"]
    assert [(m.kernel_size, m.stride, m.padding, m.out_channels) for m in enc[:6] if isinstance(m, nn.Conv2d)] == [
        ((7, 7), (1, 1), (3, 3), 64), ((3, 3), (2, 2), (1, 1), 128), ((3, 3), (2, 2), (1, 1), 256)]
    assert _kinds(enc)[:6] == ["Conv2d", "LeakyReLU"] * 3  # no norm, no padding layer in front
    assert {m.negative_slope for m in model.nets.modules() if isinstance(m, nn.LeakyReLU)} == {0.01}
    block = n["E_shared"].conv_block
    assert _kinds(block) == ["Conv2d", "InstanceNorm2d", "ReLU", "Conv2d", "InstanceNorm2d", "Dropout"]
    assert block[0].padding == (1, 1) and not block[1].affine
    convt = [m for m in dec.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.kernel_size, m.stride, m.out_channels) for m in convt] == [((3, 3), (2, 2), 128), ((3, 3), (2, 2), 64),
                                                                         ((1, 1), (1, 1), 3)]
    assert _kinds(dec)[-5:] == ["LeakyReLU", "ConvTranspose2d", "LeakyReLU", "ConvTranspose2d", "Tanh"]
    D = n["D_A"]
    assert isinstance(D, MultiScaleDiscriminator) and len(D.scales) == 3 and D.downsample == "gaussian"
    assert [m.out_channels for m in D.scales[0].modules() if isinstance(m, nn.Conv2d)] == [64, 128, 256, 512, 1]
    assert not any("Norm" in k for k in _kinds(D))
    # shapes at the official 640x480 crop, on the meta device (no arithmetic)
    meta = {k: copy.deepcopy(v).to("meta").eval() for k, v in n.items()}
    x = torch.empty(1, 3, 480, 640, device="meta")
    z = meta["E_shared"](meta["E_A"](x))
    assert z.shape == (1, 256, 120, 160) and meta["G_B"](meta["G_shared"](z)).shape == (1, 3, 480, 640)
    assert [tuple(o.shape) for o in meta["D_A"](x)] == [(1, 1, 30, 40), (1, 1, 15, 20), (1, 1, 8, 10)]
    # the solver and budget: cocogan_trainer.py lines 22-23, sunny2rainy.yaml lines 11, 17-18
    o, t = cfg.optim, cfg.trainer
    assert (o.name, o.lr, list(o.betas), o.weight_decay, o.schedule) == ("adam", 1e-4, [0.5, 0.999], 1e-4, "constant")
    assert (cfg.data.batch_size, t.max_steps, t.max_epochs) == (1, 500_000, None)
    m = cfg.model
    assert (m.loss, m.lambda_gan, m.lambda_kl, m.lambda_recon, m.lambda_cycle_kl, m.lambda_cycle) == ("bce", 10, 0.1, 100, 0.1, 100)


def test_gaussian_halving_is_the_official_blur_and_subsample():
    """common_net.py GaussianSmoother lines 12-30 (cv2.getGaussianKernel(3, -1) = [0.25, 0.5, 0.25], replicate
    padding) and cocogan_nets.py COCOMsDis.downsample lines 118-123 (every second pixel from 0); `avgpool` is the
    3x3 s2 average pool without padded zeros."""
    x = torch.randn(2, 3, 9, 7)
    taps = torch.tensor([0.25, 0.5, 0.25])
    full = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), torch.outer(taps, taps).expand(3, 1, 3, 3), groups=3)
    ms = MultiScaleDiscriminator(nn.Identity, 3, "gaussian")
    assert torch.allclose(ms.half(x), full[:, :, ::2, ::2], atol=1e-6)
    assert [tuple(o.shape[2:]) for o in ms(x)] == [(9, 7), (5, 4), (3, 2)]
    assert "blur" not in ms.state_dict()
    pooled = MultiScaleDiscriminator(nn.Identity, 2, "avgpool").half(x)
    assert torch.allclose(pooled[:, :, 0, 0], x[:, :, :2, :2].mean((2, 3)), atol=1e-6)


@pytest.mark.parametrize("bad,message", [
    (["model.arch=paper"], "model.arch"),
    (["model.norm_D=instance"], "model.norm_D=none"),
    (["model.downsample_D=bilinear"], "model.downsample_D"),
    (["model.n_scales_D=0"], "n_scales >= 1"),
])
def test_bad_unit_settings_name_the_fix(bad, message):
    cfg = validate_config(compose_cfg([*OFFICIAL, "model.ngf=4", "model.ndf=4", "model.n_res=1", *bad]))
    with pytest.raises(GantrainError, match=message):
        build_model(cfg, DataInfo("unpaired_folder", 3, 32))


def test_digits_presets_keep_the_nets_they_were_measured_with():
    """BENCHMARKS.md's unit row (digits2negative, 1,080 steps) was measured with the earlier nets and one 3-layer
    PatchGAN: the presets pin them, and the 500k-step budget does not reach them."""
    for data in ("digits2negative", "digits2edges"):
        cfg = validate_config(compose_cfg(["model=unit", f"data={data}"]))
        m, t = cfg.model, cfg.trainer
        assert (m.arch, m.n_scales_D, m.netD, m.ngf, m.ndf, m.n_res, m.dropout) == ("gantrain", 1, "basic", 8, 8, 2, False)
        assert (t.max_steps, t.max_epochs, cfg.data.batch_size) == (None, 6, 4)


def test_official_nets_train_and_resume_bitwise(tmp_path):
    """The default (official) nets with the 3-scale D, shrunk: 4 steps straight == 2 + resume + 2.

    At fp32: on 32 px digits the coarsest scale's third conv sees a 1x1 map (3x3, stride 2, padding 1), a shape for
    which torch 2.14.1's bf16 CPU convolution (oneDNN, AMX) returns a weight gradient that changes from call to call
    (not gantrain's state: two straight runs differ too), so `auto` = bf16 on such CPUs cannot be bitwise here."""
    run = ["model=unit", "data=digits2negative", "model.arch=official", "model.n_scales_D=3", "model.netD=unit",
           "model.n_res=1", "model.dropout=true", *NARROW, "trainer.max_steps=4", "trainer.precision=32"]
    train(run, tmp_path / "straight")
    shutil.copytree(tmp_path / "straight", tmp_path / "halves")
    for name in ("last.pt", runs.snapshot_name(4)):
        (tmp_path / "halves" / "checkpoints" / name).unlink()
    resumed = train(run, tmp_path / "halves", resume=True)
    assert resumed.progress.step == 4 and isinstance(resumed.model.nets["D_A"], MultiScaleDiscriminator)
    assert_same_checkpoint(tmp_path / "straight", tmp_path / "halves")
