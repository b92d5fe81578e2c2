"""Time grids: the times a fixed-step sampler visits, ``t_lo = t_0 < t_1 < ... < t_steps = t_hi``.

A grid is a component (kind ``grid``, recipe table ``[sampler.grid]``), so a plugin adds one (Karras/EDM,
log-SNR, ...) without touching the core. Times are float64 on the CPU; samplers move and cast them once.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import torch
from torch import Tensor

from fmcore.core.options import NoOptions
from fmcore.core.path import ProbabilityPath


class TimeGrid(abc.ABC):
    """Base class of time grids. ``needs_gaussian_path``: the grid reads ``alpha_t, beta_t`` of the path."""

    Options: ClassVar[type] = NoOptions
    needs_gaussian_path: ClassVar[bool] = False

    def __init__(self, options=None):
        self.options = options if options is not None else self.Options()

    @abc.abstractmethod
    def times(self, steps: int, t_range: tuple[float, float], path: ProbabilityPath) -> Tensor:
        """``steps + 1`` increasing float64 times (CPU) from exactly ``t_range[0]`` to exactly ``t_range[1]``."""


def affine_grid(u: Tensor, t_range: tuple[float, float]) -> Tensor:
    """``t = t_lo + (t_hi - t_lo) u`` for ``u`` from 0 to 1, with the ends set exactly."""
    lo, hi = t_range
    t = lo + (hi - lo) * u.to(torch.float64)
    t[0], t[-1] = lo, hi
    return t


class UniformGrid(TimeGrid):
    """Equal steps in t: ``t_i = t_lo + (t_hi - t_lo) i / steps``."""

    def times(self, steps: int, t_range: tuple[float, float], path: ProbabilityPath) -> Tensor:
        return affine_grid(torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64), t_range)
