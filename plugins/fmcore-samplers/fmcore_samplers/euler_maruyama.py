"""Euler–Maruyama on the family of SDEs that share the probability-flow ODE's marginals."""

from __future__ import annotations

import attrs
from torch import Tensor

from fmcore import Field, Sampler, SamplerOptions
from fmcore.core.noise import BatchNoise
from fmcore.core.sde import DiffusionOptions, euler_maruyama_step, gaussian_path


@attrs.define(kw_only=True)
class EulerMaruyamaOptions(SamplerOptions, DiffusionOptions):
    """Grid options and the diffusion sigma_t."""


class EulerMaruyama(Sampler):
    """EM step: x += h [u + sigma_t^2/2 s] + sigma_t sqrt(h) n (sigma_t: 'path' g(t), 'constant' or 'zero')."""

    Options = EulerMaruyamaOptions

    def run(self, field: Field, x: Tensor, noise: BatchNoise, trajectory: bool = False):
        if self.options.diffusion != "zero":
            gaussian_path(field, "euler_maruyama with a nonzero diffusion")
        return super().run(field, x, noise, trajectory)

    def step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        return euler_maruyama_step(field, x, t, t_next, noise, self.options)
