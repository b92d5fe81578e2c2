"""Samplers: integrate a :class:`~fmcore.field.Field` from the prior (t = t_lo) to the data (t = t_hi).

A sampler implements :meth:`Sampler.step` from ``t`` to ``t_next``; the base class owns the time grid,
the loop, trajectory recording and the count of network evaluations (NFE). Times are 0-d tensors on
the sample's device, so the loop never synchronises with the host.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import attrs
import torch
from torch import Tensor

from fmcore.field import Field
from fmcore.noise import BatchNoise
from fmcore.options import help_field, one_of, positive

GRIDS = ("uniform", "data")


@attrs.define(kw_only=True)
class SamplerOptions:
    """Options every sampler has."""

    steps: int = help_field(100, "number of steps on the time grid", validator=positive)
    grid: str = help_field(
        "uniform", "time grid: 'uniform', or 'data' (t = 1 - (1 - u)^rho, denser near the data)",
        validator=one_of(GRIDS),
    )
    rho: float = help_field(2.0, "exponent of the 'data' grid", validator=positive)


@attrs.frozen
class SampleResult:
    """Final samples, the trajectory [steps + 1, N, ...] when asked for, and the number of field evaluations."""

    x: Tensor
    trajectory: Tensor | None
    nfe: int


def time_grid(steps: int, kind: str, t_range: tuple[float, float], rho: float = 2.0, device=None) -> Tensor:
    """``steps + 1`` increasing times from ``t_lo`` to ``t_hi`` (float32 on ``device``).

    'uniform' spaces them evenly; 'data' uses ``t = 1 - (1 - u)^rho`` on a uniform ``u``, so steps shrink
    towards the data end, where Gaussian-mixture fields are stiff.
    """
    u = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    if kind == "data":
        u = 1.0 - (1.0 - u) ** rho
    elif kind != "uniform":
        raise ValueError(f"unknown time grid {kind!r}; expected one of {GRIDS}")
    lo, hi = t_range
    return (lo + (hi - lo) * u).to(device=device, dtype=torch.float32)


class Sampler(abc.ABC):
    """Base class of every sampler component."""

    Options: ClassVar[type] = SamplerOptions
    evals_per_step: ClassVar[int] = 1

    def __init__(self, options: SamplerOptions):
        self.options = options

    @abc.abstractmethod
    def step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        """Advance ``x`` from time ``t`` to ``t_next`` (0-d tensors); draw randomness only from ``noise``."""

    def grid(self, field: Field, device) -> Tensor:
        """The time grid over the field's time range."""
        o = self.options
        return time_grid(o.steps, o.grid, field.time_range, o.rho, device)

    def run(self, field: Field, x: Tensor, noise: BatchNoise, trajectory: bool = False) -> SampleResult:
        """Integrate from ``x`` (a draw from the prior) over the grid."""
        grid = self.grid(field, x.device).to(x.dtype)
        path = [x] if trajectory else None
        for i in range(grid.shape[0] - 1):
            x = self.step(field, x, grid[i], grid[i + 1], noise)
            if path is not None:
                path.append(x)
        traj = torch.stack(path) if path is not None else None
        return SampleResult(x, traj, self.evals_per_step * (grid.shape[0] - 1))
