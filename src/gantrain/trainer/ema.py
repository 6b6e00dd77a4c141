"""Exponential moving average of the generator weights (buffers copied, not averaged)."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


class EMA:
    def __init__(self, nets: dict[str, nn.Module], decay: float, start_step: int = 0, every: int = 1) -> None:
        self.decay, self.start_step, self.every = decay, start_step, every
        self.nets = nn.ModuleDict({name: copy.deepcopy(net).eval().requires_grad_(False) for name, net in nets.items()})

    @torch.no_grad()
    def update(self, nets: dict[str, nn.Module], step: int) -> None:
        if step % self.every:
            return
        decay = self.decay if step >= self.start_step else 0.0
        for name, ema_net in self.nets.items():
            src = nets[name]
            ema_params = list(ema_net.parameters())
            src_params = [p.detach() for p in src.parameters()]
            if decay == 0.0:
                torch._foreach_copy_(ema_params, src_params)
            else:
                torch._foreach_lerp_(ema_params, src_params, 1.0 - decay)
            for b_ema, b in zip(ema_net.buffers(), src.buffers()):
                b_ema.copy_(b)

    def state_dict(self) -> dict[str, dict]:
        return {name: net.state_dict() for name, net in self.nets.items()}

    def load_state_dict(self, state: dict[str, dict]) -> None:
        for name, sd in state.items():
            self.nets[name].load_state_dict(sd)
