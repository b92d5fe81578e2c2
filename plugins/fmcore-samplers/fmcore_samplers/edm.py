"""The stochastic sampler of Karras et al. (2022, EDM, Algorithm 2) for any Gaussian path and parameterization."""

from __future__ import annotations

import math

import attrs
import torch
from torch import Tensor

from fmcore import (
    BatchNoise,
    Choice,
    Field,
    OptionValueError,
    SampleResult,
    euler_step,
    help_field,
    nested,
    non_negative,
)
from fmcore.core.exponential import ExponentialSampler, Point, Recorder, grid_points
from fmcore_samplers.grids import LogSNRGrid
from fmcore_samplers.heun import HeunOptions, angle_euler_step, angle_heun_step, heun_step


def at_least_zero(_inst, attribute: attrs.Attribute, value: float) -> None:
    """value >= 0, infinity allowed."""
    if not value >= 0:
        raise OptionValueError(attribute.name, value, "a number >= 0 (inf for no bound)")


@attrs.define(kw_only=True)
class EDMOptions(HeunOptions):
    grid: Choice = nested("grid", "logsnr", LogSNRGrid, "time grid (default 'logsnr', measured better than EDM's "
                          "'karras' on VP and CondOT, docs/fast-sampling.md)")
    s_churn: float = help_field(0.0, "S_churn: total extra noise; each step's gamma = min(S_churn / steps, "
                                "sqrt(2) - 1); 0 = the deterministic Heun sampler", validator=non_negative)
    s_tmin: float = help_field(0.0, "S_tmin: churn only where sigma = beta / alpha >= S_tmin", validator=non_negative)
    s_tmax: float = help_field(math.inf, "S_tmax: churn only where sigma <= S_tmax (inf: no bound)",
                               validator=at_least_zero)
    s_noise: float = help_field(1.0, "S_noise: scale of the added noise (slightly > 1 offsets the field's "
                                "denoising bias)", validator=non_negative)


def churn(point: Point, t: float, lo: float, gamma: float, path) -> tuple[float, float, float]:
    """``(t_hat, k, c)`` with ``x_hat = k x + c n``: back to ``sigma_hat = (1 + gamma) sigma`` through the path's
    exact forward kernel ``x_hat = (alpha_hat / alpha) x + sqrt(beta_hat^2 - (alpha_hat / alpha)^2 beta^2) n``
    (``t_hat`` no earlier than the field's range start ``lo``)."""
    sigma_hat = (1.0 + gamma) * point.beta / point.alpha
    t_hat = min(t, max(lo, float(path.t_from_sigma(torch.tensor([sigma_hat], dtype=torch.float64))[0])))
    hat = grid_points(path, torch.tensor([t_hat], dtype=torch.float64))[0]
    k = hat.alpha / point.alpha
    return t_hat, k, math.sqrt(max(0.0, hat.beta**2 - (k * point.beta) ** 2))


class EDM(ExponentialSampler):
    """At each grid time with ``S_tmin <= sigma <= S_tmax``: raise the noise to ``sigma_hat = (1 + gamma) sigma``
    (gamma = min(S_churn / steps, sqrt 2 - 1)) with the path's forward kernel (:func:`churn`, noise scaled by
    S_noise), then a Heun step from ``t_hat`` to the next grid time (in t or, ``variable = 'angle'``, in the angle
    variables). S_churn = 0 is plain Heun on the grid. Two evaluations per step (2 steps - 1 with euler_last)."""

    Options = EDMOptions

    def nfe(self, steps: int) -> int:
        return 2 * steps - (1 if self.options.euler_last else 0)

    def run(self, field: Field, x: Tensor, noise: BatchNoise, trajectory: bool = False) -> SampleResult:
        o = self.options
        times, points = self.plan_grid(field)
        steps = len(points) - 1
        gamma = min(o.s_churn / steps, math.sqrt(2.0) - 1.0)
        lo = self.time_range(field)[0]
        record = Recorder(x, trajectory)
        for i in range(steps):
            t, t_next = float(times[i]), float(times[i + 1])
            sigma = points[i].beta / points[i].alpha if points[i].alpha > 0 else math.inf
            if gamma > 0 and points[i].alpha > 0 and o.s_tmin <= sigma <= o.s_tmax:
                t_hat, k, c = churn(points[i], t, lo, gamma, field.path)
                if t_hat < t:
                    x, t = k * x + (o.s_noise * c) * noise.randn().to(x), t_hat
            t_dev = torch.tensor(t, dtype=x.dtype, device=x.device)
            next_dev = torch.tensor(t_next, dtype=x.dtype, device=x.device)
            last = o.euler_last and i == steps - 1
            if o.variable == "angle":
                x = (angle_euler_step if last else angle_heun_step)(field, x, t_dev, next_dev)
            else:
                x = (euler_step if last else heun_step)(field, x, t_dev, next_dev)
            record.add(x)
        return record.result(x, self.nfe(steps))
