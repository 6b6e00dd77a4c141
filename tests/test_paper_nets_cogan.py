"""CoGAN's default networks and recipe at the paper's 28x28 digit size, against the official code; the digit
presets keep the DCGAN-style run BENCHMARKS.md measured; the official nets resume bitwise."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
import torch.nn as nn

from conftest import compose_cfg
from gantrain import runs
from gantrain.config.schema import validate_config
from gantrain.data.base import DataInfo
from gantrain.errors import GantrainError
from gantrain.runs import build_model
from test_reproducibility import EMA, assert_same_checkpoint, last, train

DIGITS = DataInfo("unpaired_folder", 1, 28)
# the official nets on the embedded digits at 28 px, shrunk; the preset's pins undone on the command line
OFFICIAL = ["model=cogan", "data=digits2negative", "data.image_size=28", "model.arch=official", "model.norm_D=none",
            "model.init_type=xavier_uniform", "model.init_gain=1.4142135623730951", "model.init_bias=0.1",
            "model.ngf=4", "model.d_widths=[4,4,8]", "model.z_dim=4", "model.d_dropout=0.5"]


def _params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _layers(net: nn.Module, kind: type) -> list[tuple]:
    return [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0]) for m in net.modules()
            if type(m) is kind]


def _model(overrides: list[str], info: DataInfo = DIGITS):
    cfg = validate_config(compose_cfg(["model=cogan", "data=unpaired_folder", *overrides]))
    return cfg, build_model(cfg, info)


def test_cogan_default_is_the_official_28px_digit_nets_and_solver():
    """mingyuliutw/CoGAN cogan_pytorch/src/net_cogan_mnistedge.py: CoGen28x28 (lines 32-47: transposed convs
    100->1024 k4 s1, 1024->512, 512->256, 256->128 k3 s2 p1, 128->1 k6 s1 p1 per domain, BatchNorm2d(affine=False),
    PReLU(), Sigmoid) and CoDis28x28 (lines 9-16: conv 1->20 k5 per domain, max-pool 2, conv 20->50 k5, max-pool 2,
    conv 50->500 k4, PReLU, conv 500->2 k1); init.py lines 13-18 (xavier_uniform gain sqrt 2, bias 0.1); solver
    cogan/models/mnist.edge.cogan/mnist.edge.cogan.solver.ptt lines 2-9 (Adam 2e-4, 0.5, 0.999, weight decay
    5e-4, max_iter 50000) and train.ptt (batch_size 128, uniform noise lb -1 ub 1). Counts: G 100*1024*16+1024 +
    1024*512*9+512 + 512*256*9+256 + 256*128*9+128 + 2 * (128*36+1) + 4 PReLU = 7,842,694 (the official net's);
    D 2 * (25*20+20) + 20*50*25+50 + 50*500*16+500 + 1 + 500+1 = 427,092, the official 427,593 less one row of
    its 2-logit layer (one logit here, the paper's Table 1 FC(N1) + sigmoid)."""
    cfg, model = _model([])
    G, D = model.nets["G"], model.nets["D"]
    assert _layers(G, nn.ConvTranspose2d) == [(100, 1024, 4, 1, 0), (1024, 512, 3, 2, 1), (512, 256, 3, 2, 1),
                                              (256, 128, 3, 2, 1), (128, 1, 6, 1, 1), (128, 1, 6, 1, 1)]
    assert _layers(D, nn.Conv2d) == [(1, 20, 5, 1, 0), (1, 20, 5, 1, 0), (20, 50, 5, 1, 0), (50, 500, 4, 1, 0),
                                     (500, 1, 1, 1, 0)]
    norms = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [m.num_features for m in norms] == [1024, 512, 256, 128] and not any(m.affine for m in norms)
    assert not [m for m in D.modules() if isinstance(m, (nn.BatchNorm2d, nn.Dropout))]
    assert [m.num_parameters for m in G.modules() if isinstance(m, nn.PReLU)] == [1, 1, 1, 1]
    assert sum(isinstance(m, nn.PReLU) for m in D.modules()) == 1
    assert sum(isinstance(m, nn.MaxPool2d) for m in D.modules()) == 3  # the first one per domain, then the shared one
    assert _params(G) == 7_842_694 and _params(D) == 427_092
    assert len(G.tails["A"]) == 1 and len(D.heads["A"]) == 1  # only G's last and D's first layer per domain
    a, b = G(torch.rand(4, 100) * 2 - 1)
    assert a.shape == b.shape == (4, 1, 28, 28) and a.abs().max() < 1  # sigmoid mapped to [-1, 1]
    assert D(a, "A").shape == (4,)
    convs = [m for m in (*G.modules(), *D.modules()) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(torch.all(m.bias == 0.1) for m in convs)
    w = G.shared[0][0].weight  # xavier-uniform bound gain * sqrt(6 / (fan_in + fan_out)), fans of a transposed conv
    assert w.abs().max() <= math.sqrt(2) * math.sqrt(6 / (1024 * 16 + 100 * 16))
    assert (cfg.optim.name, cfg.optim.lr, list(cfg.optim.betas), cfg.optim.weight_decay) == ("adam", 2e-4, [0.5, 0.999], 5e-4)
    assert (cfg.data.batch_size, cfg.trainer.max_steps, cfg.trainer.max_epochs) == (128, 50_000, None)
    assert (cfg.model.z_dim, cfg.model.z_dist, cfg.model.loss) == (100, "uniform", "bce")


def test_cogan_official_options_and_their_errors():
    """The Caffe nets' D dropout 0.5 (cogan/models/mnist.edge.cogan/mnist.edge.cogan.train.ptt, after conv2's PReLU)
    is an option; settings the chosen arch cannot honour are one-line errors naming the fix."""
    _, model = _model(["model.d_dropout=0.5", "model.ngf=8"])
    assert [m.p for m in model.nets["D"].modules() if isinstance(m, nn.Dropout)] == [0.5]
    assert [m.out_channels for m in model.nets["G"].modules() if isinstance(m, nn.ConvTranspose2d)] == [64, 32, 16, 8, 1, 1]
    errors = [
        ([], DataInfo("x", 1, 32), "set data.image_size=28, or model.arch=dcgan"),
        (["model.norm_D=batch"], DIGITS, "official CoGAN D has no normalisation"),
        (["model.d_widths=[20,50]"], DIGITS, "needs three positive widths"),
        (["model.arch=nope"], DIGITS, "unknown model.arch 'nope'"),
        (["model.arch=dcgan", "model.d_dropout=0.5"], DataInfo("x", 1, 32), "model.d_dropout applies to model.arch=official"),
    ]
    for overrides, info, message in errors:
        with pytest.raises(GantrainError, match=message):
            _model(overrides, info)
    # the earlier DCGAN-style nets stay available at any power-of-two size
    _, dcgan = _model(["model.arch=dcgan", "model.ngf=64", "model.norm_D=batch"], DataInfo("x", 3, 64))
    assert dcgan.nets["G"](torch.zeros(2, 100))[0].shape == (2, 3, 64, 64)


@pytest.mark.parametrize("data", ["digits2negative", "digits2edges"])
def test_cogan_digit_presets_keep_the_measured_dcgan_run(data):
    """BENCHMARKS.md "CoGAN on digits2negative": DCGAN-style coupled nets, ngf/ndf 64, 40 epochs at batch 128 (200
    steps), N(0, 0.02) init; G 1,067,906 parameters at 32 px as before the official default."""
    cfg = validate_config(compose_cfg(["model=cogan", f"data={data}"]))
    m = cfg.model
    assert (m.arch, m.ngf, m.ndf, m.norm_G, m.norm_D, m.init_type, m.init_gain, m.init_bias) == (
        "dcgan", 64, 64, "batch", "batch", "normal", 0.02, 0.0)
    assert (cfg.trainer.max_steps, cfg.trainer.max_epochs, cfg.data.batch_size, cfg.optim.weight_decay) == (None, 40, 128, 5e-4)
    model = build_model(cfg, DataInfo(data, 1, 32))
    assert _params(model.nets["G"]) == 1_067_906


def test_cogan_official_nets_resume_bitwise(tmp_path):
    """N steps straight == N/2 + resume + N/2 for the official nets (D dropout on, so its RNG is part of it)."""
    train(OFFICIAL + EMA + ["trainer.max_steps=4"], tmp_path / "straight")
    shutil.copytree(tmp_path / "straight", tmp_path / "halves")
    for name in ("last.pt", runs.snapshot_name(4)):
        (tmp_path / "halves" / "checkpoints" / name).unlink()
    resumed = train(OFFICIAL + EMA + ["trainer.max_steps=4"], tmp_path / "halves", resume=True)
    assert resumed.progress.step == 4 and last(tmp_path / "straight")["ema"]
    assert_same_checkpoint(tmp_path / "straight", tmp_path / "halves")
