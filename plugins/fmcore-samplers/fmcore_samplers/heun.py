"""Heun's method (explicit trapezoidal rule) on the probability-flow ODE, in t or in the angle variables."""

from __future__ import annotations

import attrs
from torch import Tensor

from fmcore import BatchNoise, Field, Needs, Sampler, SamplerOptions, euler_step, help_field, one_of
from fmcore.core.angle import angle_rate, angle_scale

VARIABLES = ("t", "angle")


@attrs.define(kw_only=True)
class HeunOptions(SamplerOptions):
    euler_last: bool = help_field(
        False, "take the last step with Euler (2 steps - 1 evaluations), for fields singular at the grid's end")
    variable: str = help_field(
        "t", "integration variable: 't' (x over t), or 'angle' (x / nu over theta = atan2(beta, alpha), "
        "nu = sqrt(alpha^2 + beta^2); Gaussian paths; use with grid = 'angle')", validator=one_of(VARIABLES))


def angle_euler_step(field: Field, x: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
    """Euler in the angle variables: ``x' = nu' (x / nu + (theta' - theta) dx~/dtheta)`` (one evaluation)."""
    rate, nu, theta = angle_rate(field, x, t)
    nu_next, theta_next = angle_scale(field, x, t_next)
    return nu_next * (x / nu + (theta_next - theta) * rate)


def angle_heun_step(field: Field, x: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
    """Heun in the angle variables (two evaluations), with ``k = theta' - theta``:

    ``x~_p = x / nu + k r(x, t)``, ``x_p = nu' x~_p``; ``x' = nu' (x / nu + k/2 [r(x, t) + r(x_p, t')])``.
    """
    rate, nu, theta = angle_rate(field, x, t)
    nu_next, theta_next = angle_scale(field, x, t_next)
    k = theta_next - theta
    x_pred = nu_next * (x / nu + k * rate)
    rate_next, _, _ = angle_rate(field, x_pred, t_next)
    return nu_next * (x / nu + 0.5 * k * (rate + rate_next))


def heun_step(field: Field, x: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
    """``x' = x + h u(x, t)``; ``x + h/2 (u(x, t) + u(x', t + h))``."""
    h = t_next - t
    v = field.velocity(x, t)
    v_next = field.velocity(x + h * v, t_next)
    return x + 0.5 * h * (v + v_next)


class Heun(Sampler):
    """Heun ODE step (order 2, 2 evaluations).

    ``variable = 't'``: ``x' = x + h u(x, t)``; ``x_{n+1} = x + h/2 (u(x, t) + u(x', t + h))``.
    ``variable = 'angle'``: the same rule on ``x~ = x / nu`` over ``theta`` (:func:`angle_heun_step`).
    """

    Options = HeunOptions
    evals_per_step = 2

    def needs(self) -> Needs:
        return Needs(gaussian_path=self.options.variable == "angle")

    def step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        if self.options.variable == "angle":
            return angle_heun_step(field, x, t, t_next)
        return heun_step(field, x, t, t_next)

    def last_step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        if not self.options.euler_last:
            return self.step(field, x, t, t_next, noise)
        if self.options.variable == "angle":
            return angle_euler_step(field, x, t, t_next)
        return euler_step(field, x, t, t_next)

    def nfe(self, steps: int) -> int:
        return 2 * steps - (1 if self.options.euler_last else 0)
