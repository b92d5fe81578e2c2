"""The conditional optimal-transport (linear, rectified-flow) path."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from fmcore import GaussianPath
from fmcore.core.options import help_field, in_range


@attrs.define(kw_only=True)
class CondOTOptions:
    """Options of the CondOT path."""

    sigma_min: float = help_field(0.0, "noise std left at the data end (t = 1)",
                                  validator=in_range(0.0, 1.0, hi_open=True))


class CondOTPath(GaussianPath):
    """Linear path: alpha_t = t, beta_t = 1 - (1 - sigma_min) t (Lipman et al. 2023)."""

    Options = CondOTOptions

    def __init__(self, options: CondOTOptions):
        self.options = options
        self.k = 1.0 - options.sigma_min

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return t, 1.0 - self.k * t, torch.ones_like(t), torch.full_like(t, -self.k)

    def signal_noise(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return t, 1.0 - t if self.k == 1.0 else 1.0 - self.k * t

    def rates(self, t: Tensor, alpha: Tensor, beta: Tensor) -> tuple[float, float]:
        return 1.0, -self.k

    def t_from_log_snr(self, lam: Tensor) -> Tensor:
        """``t / (1 - k t) = e^lam``, so ``t = 1 / (e^-lam + k)`` (k = 1 - sigma_min), clamped to [0, 1]."""
        return self.t_from_sigma(torch.exp(-torch.as_tensor(lam, dtype=torch.float64)))

    def t_from_sigma(self, sigma: Tensor) -> Tensor:
        """``sigma = (1 - k t) / t``, so ``t = 1 / (sigma + k)``, clamped to [0, 1]."""
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        return (1.0 / (sigma + (1.0 - self.options.sigma_min))).clamp(0.0, 1.0)
