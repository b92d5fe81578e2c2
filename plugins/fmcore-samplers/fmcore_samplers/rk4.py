"""The classic fourth-order Runge–Kutta method on the probability-flow ODE."""

from __future__ import annotations

from torch import Tensor

from fmcore import BatchNoise, Field, Sampler, SamplerOptions
from fmcore.core.ode import rk4_step


class RK4(Sampler):
    """RK4 step (order 4, 4 evaluations): x' = x + h/6 (k1 + 2 k2 + 2 k3 + k4)."""

    Options = SamplerOptions
    evals_per_step = 4

    def step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        def rhs(ys, time, rows):
            return (field.velocity(ys[0], time.to(ys[0].dtype)),)

        return rk4_step(rhs, (x,), t, t_next, None)[0]
