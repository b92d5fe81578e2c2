"""Annealed Langevin dynamics over the path's noise levels (SMLD), for any Gaussian path."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from fmcore import BatchNoise, Field, Sampler, SamplerOptions, as_time, help_field, non_negative
from fmcore.core.langevin import LangevinOptions, langevin, score_time_range
from fmcore.core.options import int_range


@attrs.define(kw_only=True)
class AnnealedLangevinOptions(SamplerOptions, LangevinOptions):
    step_size: float = help_field(0.2, "'noise' rule: step relative to the noise variance beta_t^2",
                                  validator=non_negative)
    steps_per_level: int = help_field(5, "Langevin steps M at each noise level (at most 10,000)",
                                      validator=int_range(1, 10_000))


class AnnealedLangevin(Sampler):
    """Levels t_1 < ... < t_L (the grid): rescale x by alpha_{t_i} / alpha_{t_{i-1}}, then M steps of
    x += (a_i/2) s(x, t_i) + sqrt(a_i) n with a_i = step_size beta_{t_i}^2 (the SMLD rule; no ODE predictor)."""

    Options = AnnealedLangevinOptions
    needs_score = True

    def __init__(self, options: AnnealedLangevinOptions):
        super().__init__(options)
        self.evals_per_step = options.steps_per_level

    def time_range(self, field: Field) -> tuple[float, float]:
        return score_time_range(field, self.options.t_eps)

    def step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        # Carry x into the next level's scale. For alpha > 0 this keeps y = x / alpha fixed (y follows the
        # VE-like path z + (beta/alpha) eps, whose marginal changes slowly); from alpha = 0 (CondOT's t = 0,
        # where p_t is pure noise) the noise std beta is matched instead.
        path = field.path
        lo, hi = self.time_range(field)
        now = path.schedule(as_time(t, x).clamp(lo, hi), x)
        nxt = path.schedule(as_time(t_next, x).clamp(lo, hi), x)
        ratio = torch.where(now.alpha > 0, nxt.alpha / now.alpha, nxt.beta / now.beta)
        return langevin(field, ratio * x, t_next, noise, self.options, self.options.steps_per_level)
