"""Exponential moving average of a network's weights."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """``ema <- d ema + (1 - d) theta`` after each optimiser step, with ``d = min(decay, (1 + n) / (10 + n))``
    at update ``n`` when ``warmup`` is on (so early averages do not remember the random initialisation)."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True):
        self.decay, self.warmup, self.updates = decay, warmup, 0
        self.params = [p for p in model.parameters()]
        self.shadow = [p.detach().clone().float() for p in self.params]
        self.names = [n for n, _ in model.named_parameters()]

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """One update from the live parameters (a single fused foreach lerp, no host sync)."""
        torch._foreach_lerp_(self.shadow, [p.detach().float() for p in self.params], 1.0 - self.current_decay())
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.shadow, strict=True))

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        for name, buf in zip(self.names, self.shadow, strict=True):
            buf.copy_(state[name])
        self.updates = updates

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Write the averaged weights into ``model`` (same architecture)."""
        for p, s in zip(model.parameters(), self.shadow, strict=True):
            p.copy_(s)
