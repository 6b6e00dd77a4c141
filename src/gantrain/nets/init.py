"""Weight initialisation (the DCGAN/CycleGAN convention: N(0, 0.02) convs, N(1, 0.02) norm scales)."""

from __future__ import annotations

import torch.nn as nn

from gantrain.errors import GantrainError

INIT_TYPES = ("normal", "xavier", "xavier_uniform", "kaiming", "orthogonal", "default")


def init_weights(net: nn.Module, init_type: str = "normal", gain: float = 0.02, bias: float = 0.0) -> nn.Module:
    """Re-draw every conv/linear weight (biases set to `bias`) and norm scale of `net`; `default` keeps torch's."""
    if init_type not in INIT_TYPES:
        raise GantrainError(f"unknown init_type {init_type!r}; choose one of: {', '.join(INIT_TYPES)}")
    if init_type == "default":
        return net
    for m in net.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif init_type == "xavier_uniform":
                nn.init.xavier_uniform_(m.weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.constant_(m.bias, bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return net
