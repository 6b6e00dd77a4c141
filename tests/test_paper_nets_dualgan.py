"""DualGAN's default networks and optimiser at the paper's 256 px, against the paper and the official code.

Sources: Yi et al. 2017, "DualGAN: Unsupervised Dual Learning for Image-to-Image Translation", Sec. 3.2 (network
configuration: U-Net generators, the 70x70 Markovian PatchGAN of pix2pix run convolutionally with its responses
averaged, 256x256) and Sec. 3.3 (RMSProp, weight clipping). Official 2017 code, duxingren14/DualGAN model.py
(TensorFlow): `DualNet.__init__` lines 15 and 17 (`lambda_A = 200, lambda_B = 200`, `clamp = 0.01, n_critic = 3`: gantrain's d_steps),
`DualNet.train` (`tf.train.RMSPropOptimizer(args.lr, decay=decay)` with `decay = 0.9`, lr 5e-5 from main.py).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from conftest import compose_cfg
from gantrain.config.schema import validate_config
from gantrain.data.base import DataInfo
from gantrain.trainer.optim import RMSpropTF, build_optimizer
from gantrain.runs import build_model


def _params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _receptive_field(convs: list[nn.Conv2d]) -> int:
    field = 1
    for conv in reversed(convs):
        field = field * conv.stride[0] + conv.kernel_size[0] - conv.stride[0]
    return field


def test_dualgan_default_nets_at_256px_are_the_papers():
    """U-Net 256 of pix2pix (8 stride-2 levels, C64-C128-C256-C512-C512-C512-C512-C512, decoder mirrored with
    dropout in the three innermost up-blocks; the official code's `fcn` has the same widths), 4x4 kernels, batch
    norm so convs carry no bias: encoder 16 * (3*64 + 64*128 + 128*256 + 256*512 + 4*512*512) weights, decoder
    16 * (512*512 + 3*1024*512 + 1024*256 + 512*128 + 256*64 + 128*3) + 3, norms 2 * (2432 + 2496).
    Critic: the 70x70 PatchGAN C64-C128-C256-C512 (strides 2, 2, 2, 1) and a 1-channel 4x4 conv, no sigmoid:
    16 * (3*64 + 64*128 + 128*256 + 256*512 + 512) weights, 64 + 1 biases, 2 * (128 + 256 + 512) norm params;
    its 30x30 map at 256 px is averaged by the Wasserstein loss."""
    cfg = validate_config(compose_cfg(["model=dualgan", "data=facades"]))
    model = build_model(cfg, DataInfo("facades", 3, 256))
    G, D = model.nets["G_A"], model.nets["D_A"]
    down = [m for m in G.modules() if isinstance(m, nn.Conv2d)]
    up = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in down] == [64, 128, 256, 512, 512, 512, 512, 512]
    assert sorted(m.out_channels for m in up) == sorted([512, 512, 512, 512, 256, 128, 64, 3])
    assert sum(isinstance(m, nn.Dropout) for m in G.modules()) == 3
    enc = 16 * (3 * 64 + 64 * 128 + 128 * 256 + 256 * 512 + 4 * 512 * 512)
    dec = 16 * (512 * 512 + 3 * 1024 * 512 + 1024 * 256 + 512 * 128 + 256 * 64 + 128 * 3) + 3
    assert _params(G) == enc + dec + 2 * (2432 + 2496) == 54_413_955
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [64, 128, 256, 512, 1]
    assert [m.stride[0] for m in convs] == [2, 2, 2, 1, 1] and {m.kernel_size for m in convs} == {(4, 4)}
    assert _receptive_field(convs) == 70
    assert _params(D) == 16 * (3 * 64 + 64 * 128 + 128 * 256 + 256 * 512 + 512) + 65 + 2 * (128 + 256 + 512) == 2_765_633
    assert isinstance(list(D.modules())[-1], nn.Conv2d)  # a raw critic score, no sigmoid
    G.eval()
    with torch.no_grad():
        x = torch.zeros(1, 3, 256, 256)
        assert G(x).shape == (1, 3, 256, 256)
        scores = D(x)
    assert scores.shape == (1, 1, 30, 30)
    assert torch.equal(model.loss.discriminator(scores, real=False), scores.mean())


def test_dualgan_default_recipe_is_the_official_codes():
    """TensorFlow's RMSProp at 5e-5 with decay 0.9 and its epsilon 1e-10, clip 0.01, 3 critic steps per G step, L1
    reconstruction 200 per direction, WGAN loss, batch 1, 30 epochs (official model.py/main.py, see the module
    docstring). torch's RMSprop stays one override away."""
    cfg = validate_config(compose_cfg(["model=dualgan", "data=facades"]))
    m, o = cfg.model, cfg.optim
    assert (o.name, o.lr, o.rho, o.eps, o.momentum, o.schedule) == ("rmsprop_tf", 5e-5, 0.9, 1e-10, 0.0, "constant")
    assert (m.loss, m.clip_value, m.d_steps, m.lambda_A, m.lambda_B, m.recon) == ("wgan", 0.01, 3, 200, 200, "l1")
    assert (cfg.data.batch_size, cfg.trainer.max_epochs, m.netG, m.netD) == (1, 30, "unet_256", "basic")
    opt = build_optimizer("D", [nn.Parameter(torch.zeros(2))], o, torch.device("cpu"))
    assert isinstance(opt, RMSpropTF) and opt.param_groups[0]["rho"] == 0.9
    torch_cfg = validate_config(compose_cfg(["model=dualgan", "data=facades", "optim=rmsprop"])).optim
    opt = build_optimizer("D", [nn.Parameter(torch.zeros(2))], torch_cfg, torch.device("cpu"))
    assert type(opt) is torch.optim.RMSprop and opt.param_groups[0]["alpha"] == 0.99
    # the digits presets keep the torch RMSprop they were measured with
    for data in ("digits2negative", "digits2edges"):
        p = validate_config(compose_cfg(["model=dualgan", f"data={data}"])).optim
        assert (p.name, p.lr, p.rho, p.eps) == ("rmsprop", 2e-4, 0.99, 1e-8)


def _tf_rmsprop(p: np.ndarray, grads: list[np.ndarray], lr: float, rho: float, eps: float, momentum: float) -> np.ndarray:
    """TensorFlow's ApplyRMSProp kernel in float64: ms starts at one, eps inside the root, lr inside the momentum."""
    ms, mom = np.ones_like(p), np.zeros_like(p)
    for g in grads:
        ms = ms + (g * g - ms) * (1 - rho)
        mom = momentum * mom + lr * g / np.sqrt(ms + eps)
        p = p - mom
    return p


def test_rmsprop_tf_follows_tensorflows_update_rule():
    """Four steps against the hand-written rule, with and without momentum; differs from torch's RMSprop."""
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(3, 5))
    grads = [rng.normal(size=(3, 5)) * s for s in (1.0, 0.1, 3.0, 1e-3)]
    for momentum in (0.0, 0.5):
        w = nn.Parameter(torch.tensor(p0, dtype=torch.float64))
        opt = RMSpropTF([w], lr=0.01, rho=0.9, eps=1e-10, momentum=momentum)
        for g in grads:
            w.grad = torch.tensor(g)
            opt.step()
        np.testing.assert_allclose(w.detach().numpy(), _tf_rmsprop(p0, grads, 0.01, 0.9, 1e-10, momentum), rtol=1e-12, atol=1e-14)
    # the first step is lr * g / sqrt(0.9 + 0.1 g^2), not torch's lr * g / (sqrt(0.01 g^2) + eps) ~ 10 lr * sign(g)
    w = nn.Parameter(torch.tensor(p0))
    torch_opt = torch.optim.RMSprop([w], lr=0.01)
    w.grad = torch.tensor(grads[0])
    torch_opt.step()
    assert not np.allclose(w.detach().numpy(), _tf_rmsprop(p0, grads[:1], 0.01, 0.9, 1e-10, 0.0))


def test_rmsprop_tf_resume_is_exact():
    """Its state (mean square, momentum buffer) is in the state_dict: 2 steps + reload + 2 steps == 4 steps, bitwise."""
    torch.manual_seed(0)
    grads = [torch.randn(4, 3) for _ in range(4)]
    start = torch.randn(4, 3)

    def run(steps: range, w: nn.Parameter, opt: RMSpropTF) -> None:
        for i in steps:
            w.grad = grads[i].clone()
            opt.step()

    w = nn.Parameter(start.clone())
    opt = RMSpropTF([w], lr=1e-3, momentum=0.9, weight_decay=1e-4)
    run(range(4), w, opt)
    half = nn.Parameter(start.clone())
    first = RMSpropTF([half], lr=1e-3, momentum=0.9, weight_decay=1e-4)
    run(range(2), half, first)
    state = first.state_dict()
    resumed_w = nn.Parameter(half.detach().clone())
    resumed = RMSpropTF([resumed_w], lr=1e-3, momentum=0.9, weight_decay=1e-4)
    resumed.load_state_dict(state)
    run(range(2, 4), resumed_w, resumed)
    assert set(state["state"][0]) == {"square_avg", "momentum_buffer"}
    assert torch.equal(resumed_w, w)


def test_dualgan_with_rmsprop_tf_resumes_bitwise(tmp_path):
    """The family's default optimiser through the trainer: 4 steps straight == 2 + resume + 2, checkpoints bitwise
    (tests/test_reproducibility.py's protocol; its dualgan case runs the preset's torch RMSprop)."""
    import shutil

    from test_reproducibility import NARROW, assert_same_checkpoint, last, train

    from gantrain import runs

    overrides = ["model=dualgan", "data=digits2negative", "model.netG=unet_32", "model.d_steps=2", *NARROW,
                 "optim.name=rmsprop_tf", "optim.rho=0.9", "optim.eps=1e-10", "trainer.max_steps=4"]
    train(overrides, tmp_path / "straight")
    shutil.copytree(tmp_path / "straight", tmp_path / "halves")
    for name in ("last.pt", runs.snapshot_name(4)):
        (tmp_path / "halves" / "checkpoints" / name).unlink()
    assert train(overrides, tmp_path / "halves", resume=True).progress.step == 4
    optimizers = last(tmp_path / "straight")["optimizers"]
    assert "square_avg" in optimizers["D"]["state"][0]
    assert_same_checkpoint(tmp_path / "straight", tmp_path / "halves")


def test_dualgan_official_critics_at_256px():
    """The official code's critic (duxingren14/DualGAN model.py, `DualNet.discriminator`; ops.py `conv2d` k 5, 'SAME'):
    5x5 convs 3->64 s2, 64->128 s2, 128->256 s2, 256->512 s1, all with biases, norms on the last three, then the 2017
    WGAN code's `linear` on the flattened 32x32x512 map (`official_linear`) or a 5x5 1-channel conv (`official_conv`)."""
    body = 25 * (3 * 64 + 64 * 128 + 128 * 256 + 256 * 512) + (64 + 128 + 256 + 512) + 2 * (128 + 256 + 512)
    for kind, head, out in (("official_linear", 512 * 32 * 32 + 1, (1, 1)), ("official_conv", 25 * 512 + 1, (1, 1, 32, 32))):
        cfg = validate_config(compose_cfg(["model=dualgan", "data=facades", f"model.netD={kind}"]))
        D = build_model(cfg, DataInfo("facades", 3, 256)).nets["D_A"]
        convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
        assert [(m.out_channels, m.kernel_size, m.stride[0]) for m in convs][:4] == [
            (64, (5, 5), 2), (128, (5, 5), 2), (256, (5, 5), 2), (512, (5, 5), 1)]
        assert _params(D) == body + head
        with torch.no_grad():
            assert D(torch.zeros(1, 3, 256, 256)).shape == out
