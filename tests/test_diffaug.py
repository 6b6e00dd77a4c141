"""DiffAugment: each transform does what it says, keeps gradients, and bad policies fail with one line."""

from __future__ import annotations

import pytest
import torch

from gantrain.errors import GantrainError
from gantrain.nets.diffaug import DiffAugment, color, cutout, translation


def test_empty_policy_is_identity():
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(DiffAugment("")(x), x)


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """x moved down by dy and right by dx, zero-filled (the reference the transform must match)."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[..., max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
    return out


def test_translation_is_an_integer_shift_of_up_to_an_eighth_with_zero_padding():
    torch.manual_seed(0)
    x = torch.arange(1.0, 65.0).view(1, 1, 8, 8).repeat(32, 1, 1, 1)
    y = translation(x)
    seen = set()
    for img in y:
        matches = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if torch.equal(img, shifted(x[0], dy, dx))]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 4  # shifts differ per image


def test_cutout_zeroes_one_square_of_half_the_size():
    torch.manual_seed(0)
    y = cutout(torch.ones(64, 1, 8, 8))
    zeros = (y == 0).sum(dim=(1, 2, 3))
    assert zeros.max().item() == 16 and zeros.min().item() >= 4  # 4x4, clipped at the border
    assert set(y.unique().tolist()) <= {0.0, 1.0}


def test_color_changes_each_image_differently():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 4, 4) * 2 - 1
    y = color(x)
    assert y.shape == x.shape and not torch.allclose(y, x)
    assert len({round(v, 5) for v in (y - x).mean(dim=(1, 2, 3)).tolist()}) == 8


def test_gradients_flow_through_every_policy():
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    DiffAugment("color,translation,cutout")(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unknown_policy_names_choices():
    with pytest.raises(GantrainError, match="unknown augmentation flip.*color, translation, cutout"):
        DiffAugment("translation,flip")
