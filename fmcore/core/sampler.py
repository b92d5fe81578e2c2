"""Samplers: integrate a :class:`~fmcore.core.field.Field` from the prior (t = t_lo) to the data (t = t_hi).

A sampler implements :meth:`Sampler.step` from ``t`` to ``t_next``; the base class owns the time grid (a
:class:`~fmcore.core.grid.TimeGrid` component), the loop, trajectory recording and the count of network
evaluations (NFE). Times are 0-d tensors on the sample's device, so the loop never synchronises with the host.

What a sampler needs is declared on the class (``needs_score``, ``needs_gaussian_path``) and refined per
instance by :meth:`Sampler.needs`; the recipe check compares it with the path before anything runs.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import attrs
import torch
from torch import Tensor

from fmcore.core.field import Field
from fmcore.core.grid import TimeGrid, UniformGrid
from fmcore.core.noise import SOURCES, BatchNoise
from fmcore.core.options import Choice, help_field, int_range, nested, non_negative, one_of


@attrs.frozen
class Needs:
    """What a component needs from the path: a Gaussian path, and the score (which implies one)."""

    gaussian_path: bool = False
    score: bool = False

    def __or__(self, other: Needs) -> Needs:
        return Needs(self.gaussian_path or other.gaussian_path, self.score or other.score)


#: more sampler steps than this cannot be meant (the time grid alone would take 80 MB)
MAX_STEPS = 10**7


@attrs.define(kw_only=True)
class SamplerOptions:
    """Options every sampler has."""

    steps: int = help_field(100, f"number of steps on the time grid (at most {MAX_STEPS:,})",
                            validator=int_range(1, MAX_STEPS))
    grid: Choice = nested("grid", "uniform", UniformGrid,
                          "time grid: a name ('uniform', 'data', 'angle', ...) or a [sampler.grid] table")
    guidance: float = help_field(
        1.0, "classifier-free guidance w for class-conditional models: uncond + w (cond - uncond); "
        "1 = plain conditional, 0 = unconditional", validator=non_negative)
    source: str = help_field(
        "iid", "where the prior draws come from: 'iid' normal, or 'sobol' (scrambled Sobol points through the "
        "inverse normal CDF: a low-variance source for evaluation; the model is unchanged)",
        validator=one_of(SOURCES))


@attrs.frozen
class SampleResult:
    """Final samples, the trajectory [steps + 1, N, ...] when asked for, and the number of field evaluations
    per sample: ``nfe`` (the mean, rounded), ``nfe_mean`` and ``nfe_max`` (they differ for adaptive samplers,
    whose samples each take their own steps)."""

    x: Tensor
    trajectory: Tensor | None
    nfe: int
    nfe_mean: float = attrs.field(default=attrs.Factory(lambda r: float(r.nfe), takes_self=True))
    nfe_max: int = attrs.field(default=attrs.Factory(lambda r: int(r.nfe), takes_self=True))

    @classmethod
    def adaptive(cls, x: Tensor, trajectory: Tensor | None, nfe: Tensor) -> SampleResult:
        """A result from per-sample evaluation counts ``nfe`` [N]."""
        mean = float(nfe.double().mean()) if nfe.numel() else 0.0
        return cls(x, trajectory, round(mean), mean, int(nfe.max()) if nfe.numel() else 0)


def euler_step(field: Field, x: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
    """``x + h u(x, t)``, ``h = t_next - t`` (Euler's step, also the last step of samplers that end with it)."""
    return x + (t_next - t) * field.velocity(x, t)


class Sampler(abc.ABC):
    """Base class of every sampler component."""

    Options: ClassVar[type] = SamplerOptions
    evals_per_step: ClassVar[int] = 1
    #: the sampler evaluates the score (so it needs a Gaussian path)
    needs_score: ClassVar[bool] = False
    #: the sampler reads the path's schedule alpha_t, beta_t
    needs_gaussian_path: ClassVar[bool] = False
    #: an adaptive ODE sampler: its error control, not the grid, sets the steps (it overrides :meth:`run`)
    adaptive: ClassVar[bool] = False

    def __init__(self, options: SamplerOptions):
        self.options = options
        grid = getattr(options, "grid", None)
        self.time_grid: TimeGrid = grid.create() if isinstance(grid, Choice) else UniformGrid()

    def needs(self) -> Needs:
        """What this sampler, with its options, needs (default: the class declarations)."""
        return Needs(self.needs_gaussian_path or self.needs_score, self.needs_score)

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
        """The time grid over :meth:`time_range` (float64 on ``device``)."""
        return self.time_grid.times(self.options.steps, self.time_range(field), field.path).to(device=device)

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
