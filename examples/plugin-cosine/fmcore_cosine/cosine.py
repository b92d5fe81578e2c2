"""The cosine path: alpha_t = sin(pi t / 2), beta_t = cos(pi t / 2) (Nichol & Dhariwal's schedule, in
fmcore's time where t = 0 is noise and t = 1 is data)."""

from __future__ import annotations

import math

import attrs
import torch
from torch import Tensor

from fmcore import GaussianPath


@attrs.define(kw_only=True)
class CosineOptions:
    """The cosine path has no options (an empty attrs class still documents that in `fm recipe schema`)."""


class CosinePath(GaussianPath):
    """Cosine path: alpha_t = sin(pi t / 2), beta_t = cos(pi t / 2); variance preserving, prior N(0, I).

    ``beta`` is written as ``sin(pi (1 - t) / 2)`` so that it is exactly 0 at t = 1 (``cos(pi / 2)`` is
    6e-17 in floating point): fmcore then knows that score and noise targets are singular there.
    """

    Options = CosineOptions

    def __init__(self, options: CosineOptions):
        self.options = options

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        h = math.pi / 2
        alpha, beta = torch.sin(h * t), torch.sin(h * (1 - t))
        return alpha, beta, h * beta, -h * alpha
