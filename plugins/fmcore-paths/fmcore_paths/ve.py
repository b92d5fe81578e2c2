"""The variance-exploding path (SMLD / NCSN), in fmcore's time (noise at t = 0)."""

from __future__ import annotations

import math

import attrs
import torch
from torch import Tensor

from fmcore import GaussianPath
from fmcore.core.options import OptionValueError, help_field, positive


@attrs.define(kw_only=True)
class VEOptions:
    """Options of the VE path: noise levels from sigma_max (t = 0) down to sigma_min (t = 1)."""

    sigma_min: float = help_field(0.01, "noise std at the data end (t = 1)", validator=positive)
    sigma_max: float = help_field(
        10.0, "noise std at t = 0, about the largest distance between data points (50 for CIFAR-size images)",
        validator=positive,
    )

    def __attrs_post_init__(self):
        if self.sigma_max <= self.sigma_min:
            raise OptionValueError("sigma_max", self.sigma_max, f"a number > sigma_min = {self.sigma_min}")


class VEPath(GaussianPath):
    """alpha_t = 1, beta_t = sigma_min (sigma_max / sigma_min)^(1 - t); prior N(0, sigma_max^2 I)."""

    Options = VEOptions

    def __init__(self, options: VEOptions):
        self.options = options
        self.log_ratio = math.log(options.sigma_max / options.sigma_min)

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        beta = self.options.sigma_min * torch.exp(self.log_ratio * (1.0 - t))
        return torch.ones_like(t), beta, torch.zeros_like(t), -self.log_ratio * beta

    def signal_noise(self, t: Tensor) -> tuple[float, Tensor]:
        return 1.0, self.options.sigma_min * torch.exp(self.log_ratio * (1.0 - t))

    def rates(self, t: Tensor, alpha: float, beta: Tensor) -> tuple[float, Tensor]:
        return 0.0, -self.log_ratio * beta

    def t_from_log_snr(self, lam: Tensor) -> Tensor:
        """``lambda = -log beta`` (alpha = 1): :meth:`t_from_sigma` of ``e^-lam``."""
        return self.t_from_sigma(torch.exp(-torch.as_tensor(lam, dtype=torch.float64)))

    def t_from_sigma(self, sigma: Tensor) -> Tensor:
        """``sigma = beta = sigma_min (sigma_max / sigma_min)^(1 - t)``: ``t = 1 - log(sigma / sigma_min) /
        log(sigma_max / sigma_min)``, clamped to [0, 1]."""
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        return (1.0 - torch.log(sigma / self.options.sigma_min) / self.log_ratio).clamp(0.0, 1.0)

    @property
    def prior_std(self) -> float:
        return self.options.sigma_max
