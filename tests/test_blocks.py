"""Unit tests of the shared blocks: losses, DCGAN/MLP nets, EMA, schedules, batch streams, schemas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from gantrain.config.schema import group_config, validate_config
from gantrain.data.base import InMemoryImages
from gantrain.data.digits import Digits
from gantrain.data.loader import make_batch_stream
from gantrain.errors import GantrainError
from gantrain.losses import AdversarialLoss, clip_weights_, gradient_penalty
from gantrain.metrics.frechet import frechet_distance, frechet_distance_features
from gantrain.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gantrain.nets.mlp import MLPDiscriminator, MLPGenerator
from gantrain.trainer.ema import EMA
from gantrain.trainer.optim import lr_factor

from conftest import data_cfg

LOGITS = torch.tensor([-2.0, -0.5, 0.0, 1.5])


@pytest.mark.parametrize(
    "kind, real, fake, gen",
    [
        ("bce", -F.logsigmoid(LOGITS).mean(), -F.logsigmoid(-LOGITS).mean(), -F.logsigmoid(LOGITS).mean()),
        ("lsgan", ((LOGITS - 1) ** 2).mean(), (LOGITS**2).mean(), ((LOGITS - 1) ** 2).mean()),
        ("hinge", torch.relu(1 - LOGITS).mean(), torch.relu(1 + LOGITS).mean(), -LOGITS.mean()),
        ("wgan", -LOGITS.mean(), LOGITS.mean(), -LOGITS.mean()),
    ],
)
def test_losses_match_their_formulas(kind, real, fake, gen):
    loss = AdversarialLoss(kind)
    assert loss.discriminator(LOGITS, True).item() == pytest.approx(real.item())
    assert loss.discriminator(LOGITS, False).item() == pytest.approx(fake.item())
    assert loss.generator(LOGITS).item() == pytest.approx(gen.item())


def test_unknown_loss_is_a_clear_error():
    with pytest.raises(GantrainError, match="choose one of: bce, lsgan, hinge, wgan, wgan-gp"):
        AdversarialLoss("minimax")


def test_gradient_penalty_is_zero_for_unit_slope_critic():
    critic = lambda x: x.flatten(1).sum(1) / math.sqrt(x[0].numel())  # noqa: E731 - gradient norm exactly 1
    real, fake = torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(0.0, abs=1e-10)
    steep = lambda x: 3 * x.flatten(1).sum(1) / math.sqrt(x[0].numel())  # noqa: E731
    assert gradient_penalty(steep, real, fake).item() == pytest.approx(4.0)


@pytest.mark.parametrize("size", [16, 32, 64])
def test_dcgan_nets_shapes(size):
    g = DCGANGenerator(10, 3, size, ngf=8)
    d = DCGANDiscriminator(3, size, ndf=8)
    x = g(torch.randn(5, 10))
    assert x.shape == (5, 3, size, size) and x.abs().max() <= 1
    assert d(x).shape == (5,)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in list(d.trunk)[:2]), "no BN on D's input layer"
    assert isinstance(list(g.net)[-1], torch.nn.Tanh)


def test_dcgan_rejects_odd_sizes():
    with pytest.raises(GantrainError, match="power-of-two"):
        DCGANGenerator(10, 1, 28)


def test_mlp_nets_shapes():
    g, d = MLPGenerator(8, (1, 8, 8), [16, 32]), MLPDiscriminator((1, 8, 8), [16])
    x = g(torch.randn(3, 8))
    assert x.shape == (3, 1, 8, 8) and d(x).shape == (3,)


def test_clip_weights_bounds_every_critic_parameter():
    a, b = torch.nn.Linear(3, 3), torch.nn.Conv2d(1, 2, 3)
    with torch.no_grad():
        for p in (*a.parameters(), *b.parameters()):
            p.copy_(torch.linspace(-1, 1, p.numel()).view_as(p))
    clip_weights_(a, b, value=0.01)
    params = torch.cat([p.detach().flatten() for p in (*a.parameters(), *b.parameters())])
    assert params.abs().max().item() == pytest.approx(0.01) and params.min().item() == pytest.approx(-0.01)


def test_ema_tracks_a_moving_average():
    net = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(net.weight)
    ema = EMA({"G": net}, decay=0.5)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema.update({"G": net}, step=1)
    assert torch.allclose(ema.nets["G"].weight, torch.full((1, 2), 0.5))
    ema.update({"G": net}, step=2)
    assert torch.allclose(ema.nets["G"].weight, torch.full((1, 2), 0.75))


def test_ema_standing_batch_norm_statistics_come_from_the_averaged_weights():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = EMA({"G": net}, decay=0.5, bn_batches=3)
    net.train()
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net(torch.randn(64, 3) * 5 + 2)  # live running statistics that belong to the live weights
    ema.update({"G": net}, step=1)
    assert ema.stale and torch.equal(ema.nets["G"][1].running_mean, torch.zeros(4))  # BN buffers not copied
    inputs = [torch.randn(16, 3, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    before = torch.get_rng_state()
    ema.refresh_batch_norm(lambda i: ema.nets["G"](inputs[i]))
    assert torch.equal(torch.get_rng_state(), before)  # training's RNG untouched
    with torch.no_grad():
        outputs = [ema.nets["G"][0](x) for x in inputs]
    expected_mean = torch.stack([o.mean(0) for o in outputs]).mean(0)
    assert torch.allclose(ema.nets["G"][1].running_mean, expected_mean, atol=1e-6)
    assert not ema.stale and not ema.nets["G"].training
    assert ema.nets["G"][1].momentum == net[1].momentum


def test_schedules():
    cfg = group_config("optim", "adam", schedule="linear_decay", decay_steps=50)
    f = lr_factor(cfg, total_steps=100, steps_per_epoch=10)
    assert [f(0), f(50), f(75), f(100)] == [1.0, 1.0, 0.5, 0.0]
    f = lr_factor(group_config("optim", "adam", schedule="step", step_epochs=2, gamma=0.5), 100, 10)
    assert [f(0), f(19), f(20), f(45)] == [1.0, 1.0, 0.5, 0.25]
    f = lr_factor(group_config("optim", "adam", schedule="cosine"), 100, 10)
    assert f(0) == 1.0 and f(50) == pytest.approx(0.5) and f(100) == pytest.approx(0.0)
    f = lr_factor(group_config("optim", "adam", schedule="exponential", final_lr_ratio=0.01), 100, 10)
    assert f(100) == pytest.approx(0.01)


def test_batch_stream_is_a_pure_function_of_seed_epoch_and_position():
    data = InMemoryImages(torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 1, 2, 2).contiguous(),
                          torch.arange(40), flip=True)
    make = lambda rank=0, world=1: make_batch_stream(  # noqa: E731
        data, batch_size=4, seed=7, device=torch.device("cpu"), rank=rank, world=world)
    full = [b["label"].tolist() for b in make().epoch(3)]
    assert [b["label"].tolist() for b in make().epoch(3, start=4)] == full[4:]
    assert sorted(sum(full, [])) == list(range(40))
    assert full != [b["label"].tolist() for b in make().epoch(4)]
    shards = [sum((b["label"].tolist() for b in make(r, 2).epoch(3)), []) for r in range(2)]
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) == len(shards[1]) == 20


def test_digits_split_is_fixed_and_stratified():
    cfg = data_cfg("digits", image_size=16)
    digits = Digits(cfg, seed=123)
    train, test = digits.split("train"), digits.split("test")
    assert (len(train), len(test)) == (1437, 360)
    assert train.images.shape[1:] == (1, 16, 16) and train.images.dtype == torch.uint8
    assert torch.bincount(test.labels).min() >= 35
    assert digits.info.class_names == [str(i) for i in range(10)] and sum(digits.info.class_counts) == 1437


def test_frechet_distance_matches_closed_form():
    # 1-D Gaussians: (m1 - m2)^2 + s1 + s2 - 2 sqrt(s1 s2)
    mu1, mu2 = torch.tensor([1.0]), torch.tensor([3.0])
    s1, s2 = torch.tensor([[4.0]]), torch.tensor([[9.0]])
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(4 + 4 + 9 - 12)
    a = torch.randn(500, 6, generator=torch.Generator().manual_seed(0))
    assert frechet_distance_features(a, a) == pytest.approx(0.0, abs=1e-8)


def test_schema_rejects_unknown_and_mistyped_keys(tiny_cfg):
    cfg = tiny_cfg()
    OmegaConf.set_struct(cfg, False)
    cfg.model.ngff = 3
    with pytest.raises(GantrainError, match="unknown config key model.ngff"):
        validate_config(cfg)
    cfg = tiny_cfg(["trainer.precision=64"])
    with pytest.raises(GantrainError, match="trainer.precision=64 is not valid"):
        validate_config(cfg)
    cfg = tiny_cfg()
    OmegaConf.set_struct(cfg, False)
    cfg.model._target_ = "os.system"
    with pytest.raises(GantrainError, match="only gantrain"):
        validate_config(cfg)


def test_top_k_keeps_the_fakes_d_rates_most_real_and_shrinks_per_epoch():
    from gantrain.data.base import DataInfo
    from gantrain.models.dcgan import DCGAN

    model = DCGAN(group_config("model", "dcgan", ngf=4, ndf=4, topk_gamma=0.5, topk_min=0.25), DataInfo("toy", 1, 16))
    model.steps_per_epoch = 10
    logits = torch.tensor([0.1, 3.0, -2.0, 1.0, 2.0, -1.0, 0.5, 0.0])  # DCGAN's D: one logit per image
    assert model.top_k(logits, step=9).shape == (8,)  # epoch 0: the whole batch
    assert sorted(model.top_k(logits, step=10).flatten().tolist()) == [0.5, 1.0, 2.0, 3.0]  # epoch 1: the best half
    assert model.top_k(logits, step=50).flatten().tolist() == [3.0, 2.0]  # floor: topk_min of the batch
    patch = logits.view(8, 1, 1, 1).expand(8, 1, 2, 2)  # a PatchGAN map is scored by its mean
    assert model.top_k(patch, step=50).shape == (2, 1, 2, 2)
    off = DCGAN(group_config("model", "dcgan", ngf=4, ndf=4), DataInfo("toy", 1, 16))
    assert off.top_k(logits, step=1000) is logits  # the paper's game by default


def test_frozen_nets_take_no_gradient_and_get_their_own_flags_back():
    """GANModel.frozen (D during G's step): no weight gradients inside, each parameter's flag restored after,
    also when the block raises or a parameter was frozen before (a shared or pretrained layer)."""
    from gantrain.models.base import GANModel

    D, G = torch.nn.Linear(2, 1), torch.nn.Linear(2, 2)
    D.bias.requires_grad_(False)
    with GANModel.frozen(D, None):
        D(G(torch.ones(1, 2))).sum().backward()
    assert D.weight.grad is None and G.weight.grad is not None
    assert D.weight.requires_grad and not D.bias.requires_grad
    with pytest.raises(RuntimeError), GANModel.frozen(D):
        raise RuntimeError("inside")
    assert D.weight.requires_grad
