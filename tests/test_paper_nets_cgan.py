"""cgan's default networks and solver against Mirza & Osindero 2014 (no official code was released)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from conftest import compose_cfg
from gantrain.config import validate_config
from gantrain.data.base import DataInfo
from gantrain.errors import GantrainError
from gantrain.runs import build_model

MNIST = DataInfo("mnist", 1, 28, num_classes=10, class_names=[str(i) for i in range(10)])


def _params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _default_model(overrides: list[str]):
    cfg = validate_config(compose_cfg(overrides))
    return cfg, build_model(cfg, MNIST)


def test_cgan_default_is_the_papers_mnist_nets():
    """Mirza & Osindero 2014, section 4.1 (arXiv:1411.1784 v1, p. 3, "4.1 Unimodal"): G z 100 -> 200 ReLU, y -> 1000
    ReLU, joined -> 1200 ReLU -> 784; D maxout x -> 240 units x 5 pieces, y -> 50 x 5, joined -> 240 x 4 -> one unit;
    dropout 0.5 in both. Counts at 28 px: G 101*200 + 11*1000 + 1201*1200 + 1201*784; D 785*1200 + 11*250 +
    291*960 + 241."""
    cfg, model = _default_model(["model=cgan", "data=mnist"])
    G, D = model.nets["G"], model.nets["D"]
    assert [m.out_features for m in G.modules() if isinstance(m, nn.Linear)] == [200, 1000, 1200, 784]
    assert _params(G) == 2_413_984 and _params(D) == 1_224_351
    maxouts = [m for m in D.modules() if type(m).__name__ == "Maxout"]
    assert [(m.linear.in_features, m.units, m.pieces) for m in maxouts] == [(784, 240, 5), (10, 50, 5), (290, 240, 4)]
    assert [m.p for m in G.modules() if isinstance(m, nn.Dropout)] == [0.5] * 3
    assert [m.p for m in D.modules() if isinstance(m, nn.Dropout)] == [0.5] * 3
    assert cfg.model.z_dist == "uniform" and cfg.model.loss == "bce"
    y = torch.arange(4)
    out = G(model.sample_z(4), y)
    assert out.shape == (4, 1, 28, 28) and out.abs().max() <= 1 and D(out, y).shape == (4,)


def test_cgan_default_solver_is_the_papers_sgd_schedule():
    """Section 4.1: SGD, batch 100, lr 0.1 "exponentially decreased down to .000001 with decay factor of 1.00004",
    momentum 0.5 "increased up to 0.7" (over epochs 1-250, the ramp of goodfeli/adversarial mnist.yaml)."""
    cfg, model = _default_model(["model=cgan", "data=mnist"])
    assert (cfg.optim.name, cfg.optim.lr, cfg.data.batch_size, cfg.optim.momentum, cfg.optim.momentum_final) == (
        "sgd", 0.1, 100, 0.5, 0.7)
    from gantrain.trainer.optim import build_optimizer, build_scheduler, lr_factor

    factor = lr_factor(cfg.optim, 10**6, 600)
    for step in (0, 1, 1000, 250_000):
        assert factor(step) * 0.1 == pytest.approx(0.1 / 1.00004**step, rel=1e-9)
    assert factor(287_000) * 0.1 > 1e-6 and factor(288_000) * 0.1 == pytest.approx(1e-6) == factor(10**6) * 0.1
    opt = build_optimizer("G", model.nets["G"].parameters(), cfg.optim, torch.device("cpu"))
    sched = build_scheduler(opt, cfg.optim, 300 * 2, 2)
    for _ in range(300 * 2):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["momentum"] == 0.7


def test_cgan_dcgan_arch_and_the_digits_preset():
    """`model.arch=dcgan` keeps the DCGAN-style conditional nets; arch=paper refuses DCGAN-only conditioning."""
    cfg = validate_config(compose_cfg(["model=cgan", "data=mnist", "model.arch=dcgan"]))
    model = build_model(cfg, DataInfo("mnist", 1, 32, num_classes=10, class_names=[str(i) for i in range(10)]))
    assert type(model.nets["G"]).__name__ == "ConditionalGenerator"
    with pytest.raises(GantrainError, match="model.arch=dcgan"):
        _default_model(["model=cgan", "data=mnist", "model.d_conditioning=projection"])
    with pytest.raises(GantrainError, match="model.arch"):
        _default_model(["model=cgan", "data=mnist", "model.arch=resnet"])
