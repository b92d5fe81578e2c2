"""DDIM (Song et al. 2021) for any Gaussian path, in data prediction, deterministic (eta = 0) or stochastic."""

from __future__ import annotations

import math

import attrs
from torch import Tensor

from fmcore import (
    BatchNoise,
    Choice,
    Field,
    Prediction,
    SampleResult,
    SamplerOptions,
    UniformGrid,
    help_field,
    in_range,
    nested,
)
from fmcore.core.exponential import ExponentialSampler, Point, Recorder


@attrs.define(kw_only=True)
class DDIMOptions(SamplerOptions):
    grid: Choice = nested("grid", "uniform", UniformGrid, "time grid (default 'uniform': DDIM's best on the bench, "
                          "docs/fast-sampling.md)")
    eta: float = help_field(0.0, "stochasticity: 0 = deterministic DDIM (the probability-flow ODE), 1 = DDPM's "
                            "ancestral step", validator=in_range(0.0, 1.0))


def ddim_coefficients(t: Point, s: Point, eta: float) -> tuple[float, float, float]:
    """``(a, b, c)`` of ``x_s = a x_t + b D + c n`` (float64).

    ``c = eta beta_s sqrt(1 - e^-2h)`` (``e^-h = alpha_t beta_s / (beta_t alpha_s)``; ``c`` at eta = 1 is the
    std of ``q(x_s | x_t, z)``), the rest of the noise ``sqrt(beta_s^2 - c^2)`` is carried by the implied noise
    ``(x_t - alpha_t D) / beta_t``: ``a = sqrt(beta_s^2 - c^2) / beta_t``, ``b = alpha_s - alpha_t a``.
    Finite at alpha_t = 0 (e^-h = 0) and at beta_s = 0 (a = c = 0, x_s = alpha_s D).
    """
    decay = t.alpha * s.beta / (t.beta * s.alpha)
    c = eta * s.beta * math.sqrt(max(0.0, 1.0 - decay**2))
    a = math.sqrt(max(0.0, s.beta**2 - c**2)) / t.beta
    return a, s.alpha - t.alpha * a, c


class DDIM(ExponentialSampler):
    """``x_s = a x_t + b D(x_t, t) + c n`` (:func:`ddim_coefficients`): exact for a constant data prediction;
    order 1 at eta = 0 (the same step as ``dpm_solver_pp`` with ``order = 1``). One evaluation per step."""

    Options = DDIMOptions

    def run(self, field: Field, x: Tensor, noise: BatchNoise, trajectory: bool = False) -> SampleResult:
        times, points = self.plan_grid(field)
        t_dev = times.to(device=x.device, dtype=x.dtype)
        coeffs = [ddim_coefficients(p, q, self.options.eta) for p, q in zip(points[:-1], points[1:], strict=True)]
        record = Recorder(x, trajectory)
        for i, (a, b, c) in enumerate(coeffs):
            x_next = a * x + b * field.predict(x, t_dev[i], Prediction.DATA)
            x = x_next + c * noise.randn().to(x) if self.options.eta > 0 else x_next
            record.add(x)
        return record.result(x, self.nfe(len(coeffs)))
