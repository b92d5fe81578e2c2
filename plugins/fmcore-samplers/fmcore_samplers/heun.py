"""Heun's method (explicit trapezoidal rule) on the probability-flow ODE."""

from __future__ import annotations

import attrs
from torch import Tensor

from fmcore import Field, Sampler, SamplerOptions
from fmcore.noise import BatchNoise
from fmcore.options import help_field
from fmcore.sde import euler_step


@attrs.define(kw_only=True)
class HeunOptions(SamplerOptions):
    euler_last: bool = help_field(
        False, "take the last step with Euler (2 steps - 1 evaluations), for fields singular at the grid's end")


class Heun(Sampler):
    """Heun ODE step: x' = x + h u(x, t); x_{n+1} = x + h/2 (u(x, t) + u(x', t + h)) (order 2, 2 evaluations)."""

    Options = HeunOptions
    evals_per_step = 2

    def step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        h = t_next - t
        v = field.velocity(x, t)
        v_next = field.velocity(x + h * v, t_next)
        return x + 0.5 * h * (v + v_next)

    def last_step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        if self.options.euler_last:
            return euler_step(field, x, t, t_next)
        return self.step(field, x, t, t_next, noise)

    def nfe(self, steps: int) -> int:
        return 2 * steps - (1 if self.options.euler_last else 0)
