"""The explicit midpoint method on the probability-flow ODE."""

from __future__ import annotations

from torch import Tensor

from fmcore import BatchNoise, Field, Sampler, SamplerOptions


class Midpoint(Sampler):
    """Explicit midpoint: x_{n+1} = x + h u(x + h/2 u(x, t), t + h/2) (order 2, 2 evaluations per step)."""

    Options = SamplerOptions
    evals_per_step = 2

    def step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        h = t_next - t
        x_mid = x + 0.5 * h * field.velocity(x, t)
        return x + h * field.velocity(x_mid, t + 0.5 * h)
