"""Heun's method (explicit trapezoidal rule) on the probability-flow ODE, in t or in the angle variables."""

from __future__ import annotations

import attrs
from torch import Tensor

from fmcore import Field, FmError, GaussianPath, Sampler, SamplerOptions
from fmcore.core.angle import angle_euler_step, angle_heun_step
from fmcore.core.noise import BatchNoise
from fmcore.core.options import help_field, one_of
from fmcore.core.sampler import SampleResult
from fmcore.core.sde import euler_step

VARIABLES = ("t", "angle")


@attrs.define(kw_only=True)
class HeunOptions(SamplerOptions):
    euler_last: bool = help_field(
        False, "take the last step with Euler (2 steps - 1 evaluations), for fields singular at the grid's end")
    variable: str = help_field(
        "t", "integration variable: 't' (x over t), or 'angle' (x / nu over theta = atan2(beta, alpha), "
        "nu = sqrt(alpha^2 + beta^2); Gaussian paths; use with grid = 'angle')", validator=one_of(VARIABLES))


class Heun(Sampler):
    """Heun ODE step (order 2, 2 evaluations).

    ``variable = 't'``: ``x' = x + h u(x, t)``; ``x_{n+1} = x + h/2 (u(x, t) + u(x', t + h))``.
    ``variable = 'angle'``: the same rule on ``x~ = x / nu`` over ``theta`` (:func:`fmcore.core.angle.angle_heun_step`).
    """

    Options = HeunOptions
    evals_per_step = 2

    def run(self, field: Field, x: Tensor, noise: BatchNoise, trajectory: bool = False) -> SampleResult:
        if self.options.variable == "angle" and not isinstance(field.path, GaussianPath):
            raise FmError(f"heun's variable = 'angle' needs a Gaussian path; {type(field.path).__name__} is not one "
                          "(use variable = 't')")
        return super().run(field, x, noise, trajectory)

    def step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        if self.options.variable == "angle":
            return angle_heun_step(field, x, t, t_next)
        h = t_next - t
        v = field.velocity(x, t)
        v_next = field.velocity(x + h * v, t_next)
        return x + 0.5 * h * (v + v_next)

    def last_step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        if not self.options.euler_last:
            return self.step(field, x, t, t_next, noise)
        if self.options.variable == "angle":
            return angle_euler_step(field, x, t, t_next)
        return euler_step(field, x, t, t_next)

    def nfe(self, steps: int) -> int:
        return 2 * steps - (1 if self.options.euler_last else 0)
