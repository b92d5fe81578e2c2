"""Dormand–Prince 5(4): an adaptive ODE sampler with per-sample step control (fmcore.core.ode.dopri5)."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from fmcore import BatchNoise, Field, Sampler, SampleResult, SamplerOptions, help_field, non_negative, positive
from fmcore.core.ode import dopri5


@attrs.define(kw_only=True)
class Dopri5Options(SamplerOptions):
    """Tolerances and budget. ``steps`` and ``grid`` do not set the steps (the error control does): they only
    give the times at which ``--trajectory`` records the paths (interpolated, so they never change a sample)."""

    rtol: float = help_field(1e-5, "relative tolerance of the local error per step", validator=positive)
    atol: float = help_field(1e-5, "absolute tolerance of the local error per step", validator=positive)
    max_steps: int = help_field(10_000, "step budget per sample (an error names the samples that exceed it)",
                                validator=positive)
    first_step: float = help_field(0.0, "first step size (0: Hairer's automatic choice, one extra evaluation)",
                                   validator=non_negative)


class Dopri5(Sampler):
    """Adaptive Dormand–Prince 5(4) on the probability-flow ODE (FSAL, PI step control), each sample with its
    own time and step size, so a sample does not depend on its batch-mates. Deterministic; any path and
    parameterization (no score)."""

    Options = Dopri5Options
    evals_per_step = 6
    adaptive = True

    def step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        """One adaptive integration from ``t`` to ``t_next`` (the error control picks the inner steps)."""
        lo, hi = float(t), float(t_next)
        return self._solve(field, x, lo, hi, None)[0]

    def _solve(self, field: Field, x: Tensor, lo: float, hi: float, record: Tensor | None):
        o = self.options

        def rhs(ys, t, rows):
            return (field.select(rows).velocity(ys[0], t.to(ys[0].dtype)),)

        sol = dopri5(rhs, (x,), lo, hi, rtol=o.rtol, atol=o.atol, max_steps=o.max_steps, first_step=o.first_step,
                     record_times=record)
        return sol.y[0], sol.nfe, None if sol.record is None else sol.record[0]

    def run(self, field: Field, x: Tensor, noise: BatchNoise, trajectory: bool = False) -> SampleResult:
        """Integrate from ``x`` at the start of the field's time range to its end; the grid only sets the
        trajectory's recording times."""
        lo, hi = self.time_range(field)
        record = self.grid(field, x.device) if trajectory else None
        with torch.no_grad():
            out, nfe, traj = self._solve(field, x, lo, hi, record)
        return SampleResult.adaptive(out, traj, nfe)
