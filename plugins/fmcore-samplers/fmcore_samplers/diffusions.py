"""Diffusions sigma_t besides the path's own (``fmcore.PathDiffusion``, registered as 'path')."""

from __future__ import annotations

import torch
from torch import Tensor

from fmcore import Diffusion, NoOptions, Schedule
from fmcore.core.diffusion import ScaleOptions


class ConstantDiffusion(Diffusion):
    """``sigma_t = scale`` at every time."""

    Options = ScaleOptions

    def sigma_sq(self, s: Schedule) -> Tensor:
        return torch.full_like(s.beta, self.options.scale**2)


class ZeroDiffusion(Diffusion):
    """``sigma_t = 0``: the probability-flow ODE (Euler–Maruyama is then Euler)."""

    Options = NoOptions
    is_zero = True

    def sigma_sq(self, s: Schedule) -> Tensor:
        return torch.zeros_like(s.beta)
