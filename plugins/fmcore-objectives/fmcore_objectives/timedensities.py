"""Training-time densities besides the uniform one (``fmcore.UniformTimes``, registered as 'uniform')."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from fmcore import TimeDensity, help_field, in_range, non_negative, positive


@attrs.define(kw_only=True)
class LogitNormalOptions:
    mean: float = help_field(0.0, "mean m of the normal before the sigmoid")
    std: float = help_field(1.0, "scale s of the normal before the sigmoid", validator=non_negative)


class LogitNormal(TimeDensity):
    """``u = sigmoid(m + s N(0, 1))`` (Esser et al. 2024, SD3): more training time in the middle of the path."""

    Options = LogitNormalOptions

    def sample(self, n: int, device, generator: torch.Generator | None = None) -> Tensor:
        o = self.options
        return torch.sigmoid(o.mean + o.std * torch.randn(n, device=device, generator=generator))


@attrs.define(kw_only=True)
class PowerOptions:
    power: float = help_field(2.0, "k in u = U^(1/k): density k u^(k-1); k = 2 is t = sqrt(U), k = 1 uniform",
                              validator=positive)


class Power(TimeDensity):
    """``u = U^(1/k)``, ``U ~ U[0, 1)``: density ``k u^(k - 1)``, more training time near the data end (t = 1)
    for ``k > 1``."""

    Options = PowerOptions

    def sample(self, n: int, device, generator: torch.Generator | None = None) -> Tensor:
        return torch.rand(n, device=device, generator=generator) ** (1.0 / self.options.power)


@attrs.define(kw_only=True)
class PointOptions:
    at: float = help_field(0.0, "the one training time u in [0, 1] (0: the noise end of the objective's time range)",
                           validator=in_range(0.0, 1.0))


class Point(TimeDensity):
    """Every training time at one point, ``u = at``. With ``at = 0`` on CondOT and stored (noise, endpoint)
    pairs, CFM regresses ``v(eps, 0)`` on ``z - eps``: a one-step map, one Euler step from 0 to 1 lands on the
    endpoint (``fm reflow --distill``, docs/couplings.md)."""

    Options = PointOptions

    def sample(self, n: int, device, generator: torch.Generator | None = None) -> Tensor:
        return torch.full((n,), self.options.at, device=device)
