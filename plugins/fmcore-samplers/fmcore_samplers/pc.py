"""Predictor–corrector sampling: Langevin corrector steps around an ODE or SDE predictor."""

from __future__ import annotations

import attrs
from torch import Tensor

from fmcore import BatchNoise, Choice, Field, Needs, Sampler, SamplerOptions, help_field, nested, non_negative, one_of
from fmcore.core.langevin import LangevinOptions, langevin
from fmcore_samplers.euler_maruyama import EulerMaruyama


@attrs.define(kw_only=True)
class PCOptions(SamplerOptions, LangevinOptions):
    predictor: Choice = nested("sampler", "euler_maruyama", EulerMaruyama,
                               "predictor: a sampler name ('euler', 'heun', 'euler_maruyama', ...) or a "
                               "[sampler.predictor] table with its options (its grid and steps are not used)")
    corrector_steps: int = help_field(1, "Langevin corrector steps before each predictor step",
                                      validator=non_negative)
    rule: str = help_field("snr", "corrector step size: 'snr' (Song et al.) or 'noise' (step_size beta_t^2)",
                           validator=one_of(("noise", "snr")))


class PredictorCorrector(Sampler):
    """Per grid step: M Langevin corrector steps at t_n (targeting p_{t_n}), then one predictor step to t_{n+1}."""

    Options = PCOptions
    needs_score = True

    def __init__(self, options: PCOptions):
        super().__init__(options)
        self.predictor: Sampler = options.predictor.create()

    def needs(self) -> Needs:
        return super().needs() | self.predictor.needs()

    def nfe(self, steps: int) -> int:
        return self.predictor.nfe(steps) + self.options.corrector_steps * steps

    def _correct(self, field: Field, x: Tensor, t: Tensor, noise: BatchNoise) -> Tensor:
        return langevin(field, x, t, noise, self.options, self.options.corrector_steps)

    def step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        return self.predictor.step(field, self._correct(field, x, t, noise), t, t_next, noise)

    def last_step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        return self.predictor.last_step(field, self._correct(field, x, t, noise), t, t_next, noise)
