"""Each family's default networks and recipe at its paper's image size, against figures from the paper or the
official code (each test's docstring names the source, file and line)."""

from __future__ import annotations

import torch
import torch.nn as nn

from conftest import compose_cfg
from gantrain.config.schema import validate_config
from gantrain.data.base import DataInfo
from gantrain.runs import build_model


def _params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _default_model(overrides: list[str], info: DataInfo):
    """The family built from the composed default config (model YAML + recipe), as `gantrain` would build it."""
    cfg = validate_config(compose_cfg(overrides))
    return cfg, build_model(cfg, info)


def test_dcgan_default_is_the_papers_64px_generator_with_the_official_weight_decay():
    """Radford et al. 2016, Fig. 1: z 100 -> 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128 -> 64x64x3. D widths and
    L2 1e-5 from the official code, Newmu/dcgan_code faces/train_uncond_dcgan.py lines 37 (`l2 = 1e-5`) and 44-45
    (`ngf = 128`, `ndf = 128`). Counts are for gantrain's 4x4 kernels (the official code uses 5x5): G
    100*1024*16 + 1024*512*16 + 512*256*16 + 256*128*16 + 128*3*16 weights, 2 * (1024+512+256+128) BN, 3 biases."""
    cfg, model = _default_model(["model=dcgan", "data=celeba"], DataInfo("celeba", 3, 64))
    G, D = model.nets["G"], model.nets["D"]
    out_channels = [m.out_channels for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert out_channels == [1024, 512, 256, 128, 3]
    assert [m.out_channels for m in D.modules() if isinstance(m, nn.Conv2d)] == [128, 256, 512, 1024, 1]
    assert _params(G) == 12_658_435
    assert _params(D) == 11_036_289
    assert G(torch.zeros(2, 100)).shape == (2, 3, 64, 64)
    assert cfg.optim.weight_decay == 1e-5 and cfg.optim.lr == 2e-4 and list(cfg.optim.betas) == [0.5, 0.999]
    # the width follows the image size: 4x4 has ngf * size / 8 channels
    _, small = _default_model(["model=dcgan", "data=cifar10"], DataInfo("cifar10", 3, 32))
    assert [m.out_channels for m in small.nets["G"].modules() if isinstance(m, nn.ConvTranspose2d)] == [512, 256, 128, 3]
    # the digits preset keeps what it measured with
    digits = validate_config(compose_cfg(["model=dcgan", "data=digits"]))
    assert (digits.model.ngf, digits.model.ndf, digits.optim.weight_decay) == (32, 32, 0.0)


def test_cyclegan_pix2pix_lr_steps_once_per_epoch_to_lr_over_101():
    """The reference's rule, junyanz/pytorch-CycleGAN-and-pix2pix models/networks.py line 59, stepped at the end of each
    epoch (train.py line 78): epoch e (from 0) runs at 1 - max(0, e + 1 - 100) / 101 with n_epochs = n_epochs_decay = 100."""
    from gantrain.trainer.optim import lr_factor

    for family in ("cyclegan", "pix2pix"):
        cfg = validate_config(compose_cfg([f"model={family}", "data=pix2pix_facades" if family == "pix2pix" else "data=facades"]))
        assert (cfg.optim.schedule, cfg.optim.decay_epochs, cfg.trainer.max_epochs) == ("epoch_linear", 100, 200)
        spe = 7
        f = lr_factor(cfg.optim, 200 * spe, spe)
        assert [f(s) for s in (0, 99 * spe + 6)] == [1.0, 1.0]
        assert f(100 * spe) == f(101 * spe - 1) == 1 - 1 / 101
        assert abs(f(199 * spe) - 1 / 101) < 1e-12 and abs(f(200 * spe - 1) - 1 / 101) < 1e-12


def test_pix2pix_takes_the_papers_per_dataset_budget():
    """Isola et al. 2017, appendix 6.2 (training details): edges2shoes and edges2handbags 15 epochs at batch 4,
    day2night 17 epochs at batch 4, facades 200 epochs at batch 1; the digits preset keeps its measured budget."""
    got = {}
    for data in ("edges2shoes", "edges2handbags", "night2day", "pix2pix_facades", "edges2digits"):
        cfg = validate_config(compose_cfg(["model=pix2pix", f"data={data}"]))
        got[data] = (cfg.trainer.max_epochs, cfg.data.batch_size, cfg.optim.schedule)
    assert got == {
        "edges2shoes": (15, 4, "epoch_linear"),
        "edges2handbags": (15, 4, "epoch_linear"),
        "night2day": (17, 4, "epoch_linear"),
        "pix2pix_facades": (200, 1, "epoch_linear"),
        "edges2digits": (10, 16, "linear_decay"),
    }
    # another family on the same data is untouched
    assert validate_config(compose_cfg(["model=cyclegan", "data=edges2shoes"])).trainer.max_epochs == 200


def test_norm_none_nets_match_the_reference_state_dicts():
    """Parameter counts of the reference's define_G/define_D (models/networks.py lines 132 and 163; use_bias is true
    only for instance norm, lines 336, 480, 534, 573), measured by running the reference at commit 2a7afba with input_nc 3
    (6 for the pix2pix D). `bias_without_norm=true` keeps gantrain's earlier biased convs."""
    from gantrain.nets.generators import build_generator
    from gantrain.nets.patchgan import build_patch_discriminator

    assert _params(build_generator("resnet_9blocks", 3, 3, 64, "none")) == 11_378_179  # the option: biases kept
    cfg, model = _default_model(["model=cyclegan", "data=facades", "model.norm=none"], DataInfo("facades", 3, 256))
    assert _params(model.nets["G_A"]) == 11_372_931 and _params(model.nets["D_A"]) == 2_763_841
    cfg, model = _default_model(["model=pix2pix", "data=pix2pix_facades", "model.norm=none"],
                                DataInfo("pix2pix_facades", 3, 256, paired=True))
    assert _params(model.nets["G"]) == 54_404_099 and _params(model.nets["D"]) == 2_766_913
    assert _params(build_patch_discriminator("pixel", 6, 64, 3, "none", False)) == 8_768
    # instance norm (CycleGAN's default) is unchanged: 11.378 M as the reference prints for G_A
    _, default = _default_model(["model=cyclegan", "data=facades"], DataInfo("facades", 3, 256))
    assert _params(default.nets["G_A"]) == 11_378_179


def test_bigan_default_is_the_official_mnist_recipe():
    """jeffdonahue/bigan train_mnist.sh (`--gen_net deconvnet_mnist_mlp`, `--epochs 200 --decay_epochs 200`, `u-50`) and
    its deconvnet_mnist_mlp: z 50 -> FC 1024 + BN + ReLU -> FC 1024 + BN + ReLU -> 784. D: FC 1024 on x, then the
    second layer on [h, z] (z projected into it, as the official nets' apply_cond adds a projection of the condition).
    Counts at 28 px: G 50*1024+1024 + 1024*1024+1024 + 1024*784+784 + 2 * 2048 BN; D 784*1024+1024 +
    (1024+50)*1024+1024 + 1024+1 (gantrain keeps Linear biases and BN scales)."""
    cfg, model = _default_model(["model=bigan", "data=mnist"], DataInfo("mnist", 1, 28))
    G, D = model.nets["G"], model.nets["D"]
    assert [type(m).__name__ for m in G.net] == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear", "Tanh"]
    assert _params(G) == 1_909_520 and _params(D) == 1_905_665
    assert D(torch.zeros(3, 1, 28, 28), torch.zeros(3, 50)).shape == (3,)
    assert (cfg.trainer.max_epochs, cfg.optim.decay_epochs, cfg.optim.schedule) == (400, 200, "exponential")
    from gantrain.trainer.optim import lr_factor

    f = lr_factor(cfg.optim, 400 * 10, 10)
    assert f(0) == f(200 * 10) == 1.0
    assert abs(f(300 * 10) - 0.1) < 1e-12 and abs(f(400 * 10) - 0.01) < 1e-12
    digits = validate_config(compose_cfg(["model=bigan", "data=digits"]))  # the preset keeps its measured run
    assert (digits.model.g_style, list(digits.model.d_z_hidden), digits.trainer.max_epochs, digits.optim.decay_epochs) == (
        "lrelu", [1024], 40, None)


def test_gan_default_is_the_official_mnist_recipe():
    """goodfeli/adversarial mnist.yaml: its `generator` block (nvis 100 -> RectifiedLinear 1200 -> 1200 -> Sigmoid 784),
    `discriminator` block (Maxout 240 units x 5 pieces twice -> Sigmoid 1), `algorithm` block (SGD batch_size 100,
    learning_rate .1, Momentum init_momentum .5) and `extensions` (MomentumAdjustor start 1, saturate 250, final .7). Counts at 28 px: G 101*1200 + 1201*1200 + 1201*784;
    D 785*1200 + 241*1200 + 241."""
    cfg, model = _default_model(["model=gan", "data=mnist"], DataInfo("mnist", 1, 28))
    G, D = model.nets["G"], model.nets["D"]
    assert [type(m).__name__ for m in G.net] == ["Linear", "ReLU", "Linear", "Identity", "ReLU", "Linear", "Tanh"]
    assert _params(G) == 2_503_984 and _params(D) == 1_231_441
    maxouts = [m for m in D.modules() if type(m).__name__ == "Maxout"]
    assert [(m.units, m.pieces) for m in maxouts] == [(240, 5), (240, 5)]
    assert [m.p for m in D.modules() if isinstance(m, nn.Dropout)] == [0.2, 0.5, 0.5]
    assert (cfg.optim.name, cfg.optim.lr, cfg.data.batch_size) == ("sgd", 0.1, 100)
    from gantrain.trainer.optim import build_optimizer, build_scheduler

    opt = build_optimizer("G", G.parameters(), cfg.optim, torch.device("cpu"))
    sched = build_scheduler(opt, cfg.optim, 300 * 4, 4)
    seen = {}
    for step in range(300 * 4):
        seen.setdefault(step // 4, opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    assert seen[0] == seen[1] == 0.5 and abs(seen[125] - (0.5 + 0.2 * 124 / 249)) < 1e-12 and seen[250] == seen[299] == 0.7
    # the digits preset keeps the LeakyReLU MLPs and Adam it was measured with
    digits = validate_config(compose_cfg(["model=gan", "data=digits"]))
    assert (digits.model.arch, list(digits.model.g_hidden), digits.optim.name, digits.optim.momentum_final) == (
        "mlp", [128, 256, 512, 1024], "adam", None)
