"""The variance-preserving path (DDPM, Song et al.'s VP-SDE), in fmcore's time (noise at t = 0)."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from fmcore import GaussianPath
from fmcore.core.options import OptionValueError, help_field, positive


@attrs.define(kw_only=True)
class VPOptions:
    """Options of the VP path: the linear noise rate b(s) = beta_min + s (beta_max - beta_min), s = 1 - t."""

    beta_min: float = help_field(0.1, "noise rate b(s) at diffusion time s = 0 (the data end)", validator=positive)
    beta_max: float = help_field(20.0, "noise rate b(s) at diffusion time s = 1 (the noise end)", validator=positive)

    def __attrs_post_init__(self):
        if self.beta_max < self.beta_min:
            raise OptionValueError("beta_max", self.beta_max, f"a number >= beta_min = {self.beta_min}")


class VPPath(GaussianPath):
    """alpha_t = exp(-T(1 - t) / 2), beta_t = sqrt(1 - alpha_t^2), T(s) = b_min s + (b_max - b_min) s^2 / 2.

    With s = 1 - t the diffusion time, ``d alpha/dt = alpha b(s) / 2`` where b(s) = b_min + s (b_max - b_min),
    and ``d beta/dt = -alpha d_alpha / beta`` (infinite at t = 1, where beta = 0; the product ``beta d_beta =
    -alpha d_alpha`` stays finite and is what conversions use, so the marginal velocity is finite there).
    """

    Options = VPOptions

    def __init__(self, options: VPOptions):
        self.options = options

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        alpha, beta = self.signal_noise(t)
        return alpha, beta, *self.rates(t, alpha, beta)

    def signal_noise(self, t: Tensor) -> tuple[Tensor, Tensor]:
        lo, hi = self.options.beta_min, self.options.beta_max
        s = 1.0 - t
        integral = lo * s + 0.5 * (hi - lo) * s**2
        return torch.exp(-0.5 * integral), torch.sqrt(-torch.expm1(-integral))

    def rates(self, t: Tensor, alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
        lo, hi = self.options.beta_min, self.options.beta_max
        d_alpha = 0.5 * alpha * (lo + (1.0 - t) * (hi - lo))
        return d_alpha, -alpha * d_alpha / beta

    def t_from_log_snr(self, lam: Tensor) -> Tensor:
        """``e^-2lam = beta^2 / alpha^2 = e^T - 1``: :meth:`t_from_integral` of ``T = log(1 + e^-2lam)``."""
        lam = torch.as_tensor(lam, dtype=torch.float64)
        return self.t_from_integral(torch.log1p(torch.exp(-2.0 * lam)))

    def t_from_sigma(self, sigma: Tensor) -> Tensor:
        """``sigma^2 = e^T - 1``: :meth:`t_from_integral` of ``T = log(1 + sigma^2)``."""
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        return self.t_from_integral(torch.log1p(sigma**2))

    def t_from_integral(self, integral: Tensor) -> Tensor:
        """``t = 1 - s`` with ``b_min s + (b_max - b_min) s^2 / 2 = T``, i.e. ``s = 2T / (b_min + sqrt(b_min^2 +
        2 (b_max - b_min) T))`` (the root without cancellation), clamped to [0, 1]."""
        lo, hi = self.options.beta_min, self.options.beta_max
        integral = integral.clamp(max=1e300)
        s = 2.0 * integral / (lo + torch.sqrt(lo**2 + 2.0 * (hi - lo) * integral))
        return (1.0 - s).clamp(0.0, 1.0)

    def beta_d_beta(self, alpha: Tensor, beta: Tensor, d_alpha: Tensor, d_beta: Tensor) -> Tensor:
        """``beta d_beta = -alpha d_alpha`` (from alpha^2 + beta^2 = 1): finite at t = 1, where d_beta is not."""
        return -alpha * d_alpha
