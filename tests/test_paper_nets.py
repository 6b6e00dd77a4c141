"""Each family's default networks and recipe at its paper's image size, against figures from the paper or the
official code (each test's docstring names the source, file and line)."""

from __future__ import annotations

import torch
import torch.nn as nn

from conftest import compose_cfg
from gantrain.config.schema import validate_config
from gantrain.data.base import DataInfo
from gantrain.trainer.trainer import build_model


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
