"""Euler's method on the probability-flow ODE."""

from __future__ import annotations

from torch import Tensor

from fmcore import BatchNoise, Field, Sampler, SamplerOptions, euler_step


class Euler(Sampler):
    """Euler ODE step: x_{n+1} = x_n + h u(x_n, t_n) (order 1, one evaluation per step)."""

    Options = SamplerOptions

    def step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        return euler_step(field, x, t, t_next)
