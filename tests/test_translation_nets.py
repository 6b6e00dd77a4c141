"""The shared image-to-image blocks: ResNet/U-Net generators, PatchGAN, the image pool."""

from __future__ import annotations

import io

import pytest
import torch

from gantrain.errors import GantrainError
from gantrain.nets.encoder_decoder import EncoderDecoderGenerator
from gantrain.nets.generators import build_generator
from gantrain.nets.image_pool import ImagePool
from gantrain.nets.patchgan import build_patch_discriminator
from gantrain.nets.resnet import ResnetGenerator
from gantrain.nets.unet import UnetGenerator


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def reference_resnet_keys(n_blocks: int, dropout: bool) -> set[str]:
    """The state-dict keys of the reference ResnetGenerator (instance norm, no affine), spelled out by hand."""
    keys = {"model.1.weight", "model.1.bias", "model.4.weight", "model.4.bias", "model.7.weight", "model.7.bias"}
    second = 6 if dropout else 5
    for i in range(10, 10 + n_blocks):
        for conv in (1, second):
            keys |= {f"model.{i}.conv_block.{conv}.weight", f"model.{i}.conv_block.{conv}.bias"}
    up1, up2, last = 10 + n_blocks, 13 + n_blocks, 17 + n_blocks
    for idx in (up1, up2, last):
        keys |= {f"model.{idx}.weight", f"model.{idx}.bias"}
    return keys


@pytest.mark.parametrize("kind,blocks", [("resnet_9blocks", 9), ("resnet_6blocks", 6)])
@pytest.mark.parametrize("dropout", [False, True])
def test_resnet_reproduces_reference_state_dict_layout(kind, blocks, dropout):
    g = build_generator(kind, 3, 3, ngf=8, norm="instance", dropout=dropout)
    assert set(g.state_dict()) == reference_resnet_keys(blocks, dropout)
    # a state dict with the reference's names loads strictly
    g.load_state_dict({k: v.clone() for k, v in g.state_dict().items()}, strict=True)


def test_resnet_9blocks_paper_size_and_shapes():
    g = build_generator("resnet_9blocks", 3, 3)  # ngf 64, instance norm: the CycleGAN generator
    assert n_params(g) == 11_378_179  # 11.378M as in the reference
    small = ResnetGenerator(1, 1, ngf=8, n_blocks=2)
    y = small(torch.randn(2, 1, 32, 36))
    assert y.shape == (2, 1, 32, 36) and y.abs().max() <= 1


def test_unet_layout_sizes_and_dropout():
    g = build_generator("unet_256", 3, 3, ngf=64, norm="batch")
    assert round(n_params(g) / 1e6, 3) == 54.414  # "54.414 M", as the reference prints for unet_256
    keys = set(g.state_dict())
    assert "model.model.0.weight" in keys and "model.model.1.model.1.weight" in keys
    small = UnetGenerator(1, 1, num_downs=5, ngf=4, norm="batch", dropout=True)
    assert not any(isinstance(m, torch.nn.Dropout) for m in small.modules())  # 5 levels: no 8ngf middle levels
    g128 = UnetGenerator(3, 3, num_downs=7, ngf=4, dropout=True)
    assert sum(isinstance(m, torch.nn.Dropout) for m in g128.modules()) == 2
    y = build_generator("unet_32", 1, 2, ngf=4, norm="instance")(torch.randn(2, 1, 32, 32))
    assert y.shape == (2, 2, 32, 32)
    with pytest.raises(GantrainError, match="netG"):
        build_generator("unet_48", 1, 1)
    with pytest.raises(GantrainError, match="unknown netG"):
        build_generator("resnet", 1, 1)


def test_patchgan_shapes_and_size():
    d = build_patch_discriminator("basic", 3, 64, norm="instance")
    assert n_params(d) == 2_764_737  # 2.765M as in the reference
    tiny = build_patch_discriminator("basic", 6, 4)
    assert tiny(torch.randn(1, 6, 256, 256)).shape == (1, 1, 30, 30)  # 70x70 patches, 30x30 map
    assert build_patch_discriminator("n_layers", 1, 4, n_layers=2)(torch.randn(2, 1, 32, 32)).shape == (2, 1, 6, 6)
    pix = build_patch_discriminator("pixel", 2, 4)
    assert pix(torch.randn(2, 2, 8, 8)).shape == (2, 1, 8, 8)
    out, feats = tiny.features(torch.randn(1, 6, 64, 64))
    assert len(feats) == 4 and out.shape[1] == 1
    with pytest.raises(GantrainError, match="netD"):
        build_patch_discriminator("huge", 3)


def official_discogan_params(extra_layers: bool) -> int:
    """Parameters of the official DiscoGAN Generator (64 px, 3 channels, bias-free convs), counted by hand."""
    convs = 3 * 64 + 64 * 128 + 128 * 256 + 256 * 512  # encoder 64-128-256-512 ...
    convs += 512 * 256 + 256 * 128 + 128 * 64 + 64 * 3  # ... and its mirror, all 4x4 kernels
    bn = 2 * (128 + 256 + 512) + 2 * (256 + 128 + 64)
    if extra_layers:  # the 4x4 -> 1x1x100 conv and its transpose, each with BN
        convs += 2 * 512 * 100
        bn += 2 * (100 + 512)
    return convs * 16 + bn


@pytest.mark.parametrize("bottleneck,code_shape", [(100, (100, 1, 1)), (0, (512, 4, 4))])
def test_discogan_generator_matches_official_layouts(bottleneck, code_shape):
    g = EncoderDecoderGenerator(3, 3, 64, ngf=64, bottleneck=bottleneck)
    # ours keeps a bias on the first conv (64) and the output deconv (3), as the DCGAN nets here do
    assert n_params(g) == official_discogan_params(extra_layers=bottleneck > 0) + 64 + 3
    x = torch.randn(2, 3, 64, 64)
    assert g.encoder(x).shape == (2, *code_shape)
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1


def test_discogan_generator_code_size_and_errors():
    g = EncoderDecoderGenerator(1, 1, 32, ngf=4, bottleneck=0, code_size=8)
    x = torch.randn(2, 1, 32, 32)
    assert g.encoder(x).shape == (2, 8, 8, 8)  # two stride-2 levels: 4 -> 8 channels, 8x8 map
    assert g(x).shape == x.shape
    assert EncoderDecoderGenerator(1, 1, 32, ngf=4, bottleneck=10, code_size=8).encoder(x).shape == (2, 10, 1, 1)
    with pytest.raises(GantrainError, match="code_size must be a power of two"):
        EncoderDecoderGenerator(1, 1, 32, code_size=3)
    with pytest.raises(GantrainError, match="image size >= 4 x model.code_size"):
        EncoderDecoderGenerator(1, 1, 16, code_size=8)
    with pytest.raises(GantrainError, match="bottleneck must be >= 0"):
        EncoderDecoderGenerator(1, 1, 32, bottleneck=-1)


def test_image_pool_follows_reference_rule_and_resumes_exactly():
    pool = ImagePool(size=3, seed=1)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: returns what it stores
    outs = [pool.query(torch.full((1, 1, 1, 1), 10.0 + i)) for i in range(40)]
    from_history = [float(o) for i, o in enumerate(outs) if float(o) != 10.0 + i]
    assert 8 < len(from_history) < 32  # about half come from the history
    # exact resume through a weights_only round trip
    buf = io.BytesIO()
    torch.save(pool.state_dict(), buf)
    buf.seek(0)
    clone = ImagePool(size=3, seed=99)
    clone.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.randn(5, 1, 1, 1)
    assert torch.equal(pool.query(x), clone.query(x))
    assert torch.equal(pool.images, clone.images)
    assert torch.equal(ImagePool(size=0).query(x), x)
