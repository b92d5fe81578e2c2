"""Time densities: how training draws ``t``. A component (kind ``time_density``, recipe table
``[objective.time_sampling]``): ``u`` in [0, 1) is drawn by the density and mapped affinely onto the
objective's time range."""

from __future__ import annotations

import abc
from typing import ClassVar

import torch
from torch import Tensor

from fmcore.core.options import NoOptions


class TimeDensity(abc.ABC):
    """Base class of training-time densities on [0, 1]."""

    Options: ClassVar[type] = NoOptions

    def __init__(self, options=None):
        self.options = options if options is not None else self.Options()

    @abc.abstractmethod
    def sample(self, n: int, device, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws ``u`` in [0, 1], shape [n], float32 on ``device`` (randomness only from ``generator``,
        else torch's global generator)."""

    def times(self, n: int, t_range: tuple[float, float], device,
              generator: torch.Generator | None = None) -> Tensor:
        """``t = t_lo + (t_hi - t_lo) u``."""
        u = self.sample(n, device, generator)
        lo, hi = t_range
        return u if (lo, hi) == (0.0, 1.0) else lo + (hi - lo) * u


class UniformTimes(TimeDensity):
    """``u ~ U[0, 1)``."""

    def sample(self, n: int, device, generator: torch.Generator | None = None) -> Tensor:
        return torch.rand(n, device=device, generator=generator)
