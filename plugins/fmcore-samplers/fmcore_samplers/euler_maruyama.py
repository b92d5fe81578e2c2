"""Euler–Maruyama on the family of SDEs that share the probability-flow ODE's marginals."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from fmcore import (
    BatchNoise,
    Choice,
    Field,
    Needs,
    PathDiffusion,
    Sampler,
    SamplerOptions,
    as_time,
    euler_step,
    help_field,
    nested,
    non_negative,
)


@attrs.define(kw_only=True)
class EulerMaruyamaOptions(SamplerOptions):
    """Grid options, the diffusion sigma_t and its stability cap."""

    diffusion: Choice = nested("diffusion", "path", PathDiffusion,
                               "sigma_t: 'path' (the path's reverse-SDE diffusion), 'constant', 'zero' (the ODE), "
                               "or a [sampler.diffusion] table")
    limit: float = help_field(
        1.0, "stability cap sigma_t^2 <= limit * beta_t^2 / h per step (0 disables); keeps the score term's "
        "contraction h sigma^2 / (2 var_t) <= limit / 2 where var_t >= beta_t^2", validator=non_negative,
    )


def euler_maruyama_step(field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise,
                        sigma_sq, limit: float) -> Tensor:
    """``x + h [u(x,t) + sigma_t^2/2 s(x,t)] + sigma_t sqrt(h) n`` with one network evaluation.

    ``sigma_t^2`` is ``sigma_sq(schedule)`` capped at ``limit * beta_t^2 / h`` (``min(+inf, cap) = cap`` makes
    CondOT's path diffusion finite at t = 0).
    """
    h = t_next - t
    v, score = field.velocity_and_score(x, t)
    s = field.path.schedule(as_time(t, x).clamp(*field.time_range), x)
    sq = sigma_sq(s)
    if limit > 0:
        sq = torch.minimum(sq, limit * s.beta**2 / h)
    return x + h * (v + 0.5 * sq * score) + torch.sqrt(sq * h) * noise.randn().to(x.dtype)


class EulerMaruyama(Sampler):
    """EM step: x += h [u + sigma_t^2/2 s] + sigma_t sqrt(h) n; a zero diffusion is exactly Euler."""

    Options = EulerMaruyamaOptions

    def __init__(self, options: EulerMaruyamaOptions):
        super().__init__(options)
        self.diffusion = options.diffusion.create()

    def needs(self) -> Needs:
        if self.diffusion.is_zero:
            return Needs(gaussian_path=self.diffusion.needs_gaussian_path)
        return Needs(gaussian_path=True, score=True)

    def step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        if self.diffusion.is_zero:
            return euler_step(field, x, t, t_next)
        return euler_maruyama_step(field, x, t, t_next, noise, self.diffusion.sigma_sq, self.options.limit)
