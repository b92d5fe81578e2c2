"""Angle variables: every Gaussian path written as a rotation between data and noise (docs/samplers.md).

For ``x = alpha_t z + beta_t eps`` let ``nu_t = sqrt(alpha_t^2 + beta_t^2)`` and ``theta_t = atan2(beta_t, alpha_t)``,
so that ``x / nu = cos(theta) z + sin(theta) eps``. With ``x~ = x / nu``, the probability-flow ODE becomes

    dx~/dtheta = -sin(theta) z_hat + cos(theta) eps_hat = (nu' x - nu u) / D,

where ``u`` is the field's velocity, ``nu' = (alpha alpha' + beta beta') / nu`` and ``D = beta alpha' - alpha beta'``
(``dtheta/dt = -D / nu^2``). In these variables CondOT, VP and VE are the same ODE on different theta intervals,
its right-hand side is bounded by ``|z_hat| + |eps_hat|``, and it is finite where alpha = 0 (CondOT at t = 0,
theta = pi/2) or beta = 0 (theta = 0); in fmcore's t, VP and VE are stiff near t = 0 instead. The ``angle`` grid is
uniform in theta and the ``heun`` sampler's ``variable = "angle"`` integrates in ``(x~, theta)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fmcore.core.field import Field
from fmcore.core.path import BISECTION_STEPS, GaussianPath, ProbabilityPath
from fmcore.core.tensors import as_time


def path_angle(path: GaussianPath, t: Tensor) -> Tensor:
    """``theta_t = atan2(beta_t, alpha_t)`` for times ``t`` of shape [N] (pi/2 at pure noise, 0 at clean data)."""
    alpha, beta, _, _ = path.coefficients(t)
    return torch.atan2(beta, alpha)


def angle_times(path: ProbabilityPath, steps: int, t_range: tuple[float, float]) -> Tensor:
    """``steps + 1`` times (float64, on the CPU) from ``t_lo`` to ``t_hi`` at equal steps of ``theta_t``.

    Each time is found by bisection on ``theta_t``, which must decrease from ``t_lo`` to ``t_hi`` (it does on every
    path with ``D > 0``: CondOT, VP, VE). The ends are exactly ``t_lo`` and ``t_hi``.
    """
    if not isinstance(path, GaussianPath):
        raise ValueError(f"the 'angle' grid needs a Gaussian path; {type(path).__name__} is not one")
    lo, hi = t_range
    ends = path_angle(path, torch.tensor([lo, hi], dtype=torch.float64))
    if not bool(ends[0] > ends[1]):
        raise ValueError(f"theta_t = atan2(beta, alpha) must decrease over [{lo}, {hi}] for the 'angle' grid, "
                         f"got {float(ends[0])} -> {float(ends[1])}")
    target = ends[0] + torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64) * (ends[1] - ends[0])
    a = torch.full_like(target, lo)
    b = torch.full_like(target, hi)
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (a + b)
        before = path_angle(path, mid) > target  # theta decreases: the target time lies right of mid
        a = torch.where(before, mid, a)
        b = torch.where(before, b, mid)
    times = 0.5 * (a + b)
    times[0], times[-1] = lo, hi
    return times


def angle_rate(field: Field, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(dx~/dtheta, nu, theta)`` at ``(x, t)`` from one evaluation of the field's velocity.

    ``dx~/dtheta = (nu' x - nu u) / D`` (module docstring); ``t`` is clamped into the field's time range first,
    as the field itself does. Shapes broadcast against ``x``.
    """
    s = field.path.schedule(as_time(t, x).clamp(*field.time_range), x)
    nu = torch.sqrt(s.alpha**2 + s.beta**2)
    d_nu = (s.alpha * s.d_alpha + s.beta_d_beta) / nu
    rate = (d_nu * x - nu * field.velocity(x, t)) / s.determinant
    return rate, nu, torch.atan2(s.beta, s.alpha)


def angle_scale(field: Field, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """``(nu, theta)`` at time ``t`` (clamped into the field's range), shaped to broadcast against ``x``."""
    s = field.path.schedule(as_time(t, x).clamp(*field.time_range), x)
    return torch.sqrt(s.alpha**2 + s.beta**2), torch.atan2(s.beta, s.alpha)

