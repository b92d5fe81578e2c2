"""Samplers: integrate a :class:`~fmcore.core.field.Field` from the prior (t = t_lo) to the data (t = t_hi).

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

from fmcore.core.angle import angle_times
from fmcore.core.field import Field
from fmcore.core.noise import BatchNoise
from fmcore.core.options import help_field, non_negative, one_of, positive
from fmcore.core.path import ProbabilityPath

GRIDS = ("uniform", "data", "angle")


@attrs.define(kw_only=True)
class SamplerOptions:
    """Options every sampler has."""

    steps: int = help_field(100, "number of steps on the time grid", validator=positive)
    grid: str = help_field(
        "uniform", "time grid: 'uniform', 'data' (t = 1 - (1 - u)^rho, denser near the data) or 'angle' (uniform in "
        "theta = atan2(beta_t, alpha_t), Gaussian paths only)",
        validator=one_of(GRIDS),
    )
    rho: float = help_field(2.0, "exponent of the 'data' grid", validator=positive)
    guidance: float = help_field(
        1.0, "classifier-free guidance w for class-conditional models: uncond + w (cond - uncond); "
        "1 = plain conditional, 0 = unconditional", validator=non_negative)


@attrs.frozen
class SampleResult:
    """Final samples, the trajectory [steps + 1, N, ...] when asked for, and the number of field evaluations."""

    x: Tensor
    trajectory: Tensor | None
    nfe: int


def time_grid(steps: int, kind: str, t_range: tuple[float, float], rho: float = 2.0, device=None,
              path: ProbabilityPath | None = None) -> Tensor:
    """``steps + 1`` increasing times from ``t_lo`` to ``t_hi`` (float64 on ``device``; samplers cast them to
    the samples' dtype).

    'uniform' spaces them evenly; 'data' uses ``t = 1 - (1 - u)^rho`` on a uniform ``u``, so steps shrink
    towards the data end, where Gaussian-mixture fields are stiff; 'angle' spaces ``theta_t = atan2(beta_t,
    alpha_t)`` of the (Gaussian) ``path`` evenly (:func:`fmcore.core.angle.angle_times`, computed on the host once).
    """
    if kind == "angle":
        if path is None:
            raise ValueError("the 'angle' grid needs the path")
        return angle_times(path, steps, t_range).to(device=device)
    u = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    if kind == "data":
        u = 1.0 - (1.0 - u) ** rho
    elif kind != "uniform":
        raise ValueError(f"unknown time grid {kind!r}; expected one of {GRIDS}")
    lo, hi = t_range
    return (lo + (hi - lo) * u).to(device=device)


class Sampler(abc.ABC):
    """Base class of every sampler component."""

    Options: ClassVar[type] = SamplerOptions
    evals_per_step: ClassVar[int] = 1

    def __init__(self, options: SamplerOptions):
        self.options = options

    @abc.abstractmethod
    def step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        """Advance ``x`` from time ``t`` to ``t_next`` (0-d tensors); draw randomness only from ``noise``."""

    def last_step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        """The final step, onto the grid's end (where a field may be singular); :meth:`step` by default."""
        return self.step(field, x, t, t_next, noise)

    def nfe(self, steps: int) -> int:
        """Network evaluations per sample for a run of ``steps`` grid steps."""
        return self.evals_per_step * steps

    def time_range(self, field: Field) -> tuple[float, float]:
        """The interval the grid spans: the field's time range (samplers needing a score may shrink it)."""
        return field.time_range

    def grid(self, field: Field, device) -> Tensor:
        """The time grid over :meth:`time_range`."""
        o = self.options
        return time_grid(o.steps, o.grid, self.time_range(field), o.rho, device, field.path)

    def run(self, field: Field, x: Tensor, noise: BatchNoise, trajectory: bool = False) -> SampleResult:
        """Integrate from ``x`` (a draw from the prior) over the grid."""
        grid = self.grid(field, x.device).to(x.dtype)
        steps = grid.shape[0] - 1
        path = [x] if trajectory else None
        for i in range(steps):
            advance = self.last_step if i == steps - 1 else self.step
            x = advance(field, x, grid[i], grid[i + 1], noise)
            if path is not None:
                path.append(x)
        traj = torch.stack(path) if path is not None else None
        return SampleResult(x, traj, self.nfe(steps))
