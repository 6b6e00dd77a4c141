"""gan_cls's default networks and recipe against Reed et al. 2016's official code, reedscot/icml2016 main_cls_int.lua
(the script scripts/train_cub.sh and scripts/train_flowers.sh run) and data/donkey_folder_txt.lua. Lines are cited
by the statement quoted (grep-able in that file)."""

from __future__ import annotations

import torch
import torch.nn as nn

from conftest import compose_cfg
from gantrain.config.schema import validate_config
from gantrain.data.base import DataInfo
from gantrain.nets.text_conditional import ResidualBottleneck
from gantrain.runs import build_model

CUB = DataInfo("cub", 3, 64, vocab=["<pad>", "<unk>", "a", "bird"], max_len=8)


def _official_count(net: nn.Module) -> int:
    """Parameters the official code trains: its fDx/fGx zero every convolution bias before each step
    (`netD:apply(function(m) if torch.type(m):find('Convolution') then m.bias:zero() end end)`, the same for netG),
    so conv biases (gantrain has three: the first D conv, D's head, G's output) are left out of both counts."""
    biases = {id(m.bias) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None}
    return sum(p.numel() for p in net.parameters() if id(p) not in biases)


def _default(overrides: list[str]):
    cfg = validate_config(compose_cfg(["model=gan_cls", "data=cub", *overrides]))
    return cfg, build_model(cfg, CUB)


def test_gan_cls_default_nets_are_the_official_64px_nets():
    """main_cls_int.lua, opt: `txtSize = 1024`, `nt = 128`, `nz = 100`, `ngf = 128`, `ndf = 64`. G: `fcG:add(nn.Linear(
    opt.txtSize,opt.nt))` + LeakyReLU (no BN); `SpatialFullConvolution(nz + opt.nt, ngf * 8, 4, 4)` + BN, then a
    residual block `SpatialConvolution(ngf * 8, ngf * 2, 1, 1 ...)`, `(ngf * 2, ngf * 2, 3, 3 ...)`, `(ngf * 2, ngf * 8,
    3, 3 ...)` (BN each, ReLU between) added to its input then ReLU; `(ngf * 8, ngf * 4, 4, 4, 2, 2, 1, 1)` + BN and the
    8x8 block ngf*4 -> ngf -> ngf -> ngf*4; then ngf*2, ngf (BN + ReLU) and nc = 3 with Tanh. Official trained count
    131,200 + 228*1024*16 + 2,048 + 3,214,336 (4x4 block) + 1024*512*16 + 1,024 + 804,352 (8x8 block) + 512*256*16
    + 512 + 256*128*16 + 256 + 128*3*16 = 18,905,472.
    D: `SpatialConvolution(nc, ndf, 4, 4, 2, 2, 1, 1)` + LeakyReLU, ndf*2, ndf*4, ndf*8 (BN); `fcD`: Linear(1024, 128)
    + `nn.BatchNormalization(opt.nt)` + LeakyReLU, replicated 4x4 and joined; `SpatialConvolution(ndf * 8 + opt.nt,
    ndf * 8, 1, 1)` + BN + LeakyReLU; `SpatialConvolution(ndf * 8, 1, 4, 4)`. Its 4x4 residual block is built but the
    ConcatTable gets `conc:add(skipD)`, a global never assigned (nil: `add` inserts nothing), so the block is not in
    the net: count 3,072 + 131,328 + 524,800 + 2,098,176 + 131,456 (fcD) + 328,704 + 8,192 = 3,225,728; with the
    block as written (`model.d_residual=true`) 804,352 more."""
    cfg, model = _default([])
    G, D = model.nets["G"], model.nets["D"]
    assert [m.out_channels for m in G.modules() if isinstance(m, nn.ConvTranspose2d)] == [1024, 512, 256, 128, 3]
    blocks = [m for m in G.modules() if isinstance(m, ResidualBottleneck)]
    shapes = [[tuple(c.weight.shape) for c in b.modules() if isinstance(c, nn.Conv2d)] for b in blocks]
    assert shapes == [[(256, 1024, 1, 1), (256, 256, 3, 3), (1024, 256, 3, 3)],
                      [(128, 512, 1, 1), (128, 128, 3, 3), (512, 128, 3, 3)]]
    assert [type(m) for m in G.project.net] == [nn.Linear, nn.Identity, nn.LeakyReLU]
    assert tuple(G.project.net[0].weight.shape) == (128, 1024)
    assert _official_count(G) == 18_905_472
    assert [m.out_channels for m in D.modules() if isinstance(m, nn.Conv2d)] == [64, 128, 256, 512, 512, 1]
    assert [type(m) for m in D.project.net] == [nn.Linear, nn.BatchNorm1d, nn.LeakyReLU]
    assert not any(isinstance(m, ResidualBottleneck) for m in D.modules())
    assert _official_count(D) == 3_225_728
    _, with_block = _default(["model.d_residual=true"])
    assert _official_count(with_block.nets["D"]) == 3_225_728 + 804_352
    G.eval(), D.eval()
    z, h = torch.zeros(2, 100), torch.zeros(2, 1024)
    assert G(z, h).shape == (2, 3, 64, 64) and D(G(z, h), h).shape == (2,)


def test_gan_cls_default_recipe_is_the_official_training_script():
    """scripts/train_cub.sh and train_flowers.sh: `NC=4` (numCaption), `CLS=0.5`, `INT=1.0` (interp_weight, GAN-INT-CLS),
    `interp_type=1` ((h1 + h2) / 2), `niter=600`, `lr_decay=0.5`, `decay_every=100`; main_cls_int.lua opt `lr = 0.0002`,
    `beta1 = 0.5`, `batchSize = 64`, `noise = 'normal'`. data/donkey_folder_txt.lua `sample_no_repl` draws the
    numCaption captions of an image independently (`torch.randperm(info1.txt:size(1))[1]` per caption) and
    main_cls_int.lua averages their embeddings (`netR`, replicate=0: Reshape, Transpose, `nn.Mean(1)`)."""
    cfg, _ = _default([])
    m = cfg.model
    assert (m.num_captions, m.cls_weight, m.interpolate, m.int_beta, m.matching_aware) == (4, 0.5, True, 0.5, True)
    assert (m.z_dim, m.z_dist, m.ngf, m.ndf, m.proj_dim, m.text_dim) == (100, "normal", 128, 64, 128, 1024)
    assert (cfg.trainer.max_epochs, cfg.data.batch_size, cfg.data.image_size) == (600, 64, 64)
    assert (cfg.optim.name, cfg.optim.lr, list(cfg.optim.betas)) == ("adam", 2e-4, [0.5, 0.999])
    assert (cfg.optim.schedule, cfg.optim.step_epochs, cfg.optim.gamma) == ("step", 100, 0.5)
    # the shapes preset keeps the CPU run it measured
    shapes = validate_config(compose_cfg(["model=gan_cls", "data=shapes"])).model
    assert (shapes.ngf, shapes.ndf, shapes.text_dim, shapes.num_captions, shapes.interpolate) == (32, 32, 128, 1, False)
