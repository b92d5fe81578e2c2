"""Predictor–corrector sampling: Langevin corrector steps around an ODE or SDE predictor."""

from __future__ import annotations

import attrs
from torch import Tensor

from fmcore import Field, Sampler, SamplerOptions
from fmcore.core.noise import BatchNoise
from fmcore.core.options import help_field, non_negative, one_of
from fmcore.core.sde import DiffusionOptions, LangevinOptions, gaussian_path, langevin
from fmcore_samplers.euler import Euler
from fmcore_samplers.euler_maruyama import EulerMaruyama, EulerMaruyamaOptions
from fmcore_samplers.heun import Heun, HeunOptions

PREDICTORS = {"euler": Euler, "heun": Heun, "euler_maruyama": EulerMaruyama}


@attrs.define(kw_only=True)
class PCOptions(SamplerOptions, DiffusionOptions, LangevinOptions):
    predictor: str = help_field("euler_maruyama", "predictor: 'euler', 'heun' or 'euler_maruyama'",
                                validator=one_of(tuple(PREDICTORS)))
    corrector_steps: int = help_field(1, "Langevin corrector steps before each predictor step",
                                      validator=non_negative)
    rule: str = help_field("snr", "corrector step size: 'snr' (Song et al.) or 'noise' (step_size beta_t^2)",
                           validator=one_of(("noise", "snr")))


class PredictorCorrector(Sampler):
    """Per grid step: M Langevin corrector steps at t_n (targeting p_{t_n}), then one predictor step to t_{n+1}."""

    Options = PCOptions

    def __init__(self, options: PCOptions):
        super().__init__(options)
        o = options
        grid = dict(steps=o.steps, grid=o.grid, rho=o.rho)
        if o.predictor == "euler_maruyama":
            popts = EulerMaruyamaOptions(**grid, diffusion=o.diffusion, scale=o.scale, limit=o.limit)
        elif o.predictor == "heun":
            popts = HeunOptions(**grid)
        else:
            popts = SamplerOptions(**grid)
        self.predictor = PREDICTORS[o.predictor](popts)
        self.evals_per_step = self.predictor.evals_per_step + o.corrector_steps

    def nfe(self, steps: int) -> int:
        return self.predictor.nfe(steps) + self.options.corrector_steps * steps

    def run(self, field: Field, x: Tensor, noise: BatchNoise, trajectory: bool = False):
        gaussian_path(field, "a Langevin corrector")
        return super().run(field, x, noise, trajectory)

    def _correct(self, field: Field, x: Tensor, t: Tensor, noise: BatchNoise) -> Tensor:
        return langevin(field, x, t, noise, self.options, self.options.corrector_steps)

    def step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        return self.predictor.step(field, self._correct(field, x, t, noise), t, t_next, noise)

    def last_step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        return self.predictor.last_step(field, self._correct(field, x, t, noise), t, t_next, noise)


