"""Normalisation layers by name, so `norm: batch|instance|layer|none` is a config value."""

from __future__ import annotations

import torch.nn as nn

from gantrain.errors import GantrainError

NORMS = ("batch", "instance", "layer", "none")


def norm2d(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise GantrainError(f"unknown norm {kind!r}; choose one of: {', '.join(NORMS)}")


def norm1d(kind: str, features: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.LayerNorm(features)
    if kind == "none":
        return nn.Identity()
    raise GantrainError(f"unknown norm {kind!r} for an MLP; choose one of: batch, layer, none")


def uses_bias(kind: str, bias_without_norm: bool = True) -> bool:
    """A conv followed by batch norm needs no bias; instance norm without affine keeps it (as the reference does).
    `bias_without_norm=False` also drops it for norm none, the reference's rule, so its checkpoints load strictly."""
    return kind != "batch" and (bias_without_norm or kind != "none")
