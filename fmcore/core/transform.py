"""Sampling a model along another Gaussian path: the exact change of schedule at matched signal-to-noise ratio.

A field on path A (``x = alpha_A z + beta_A eps``) and a Gaussian path B: at B's time ``t`` take A's time ``r(t)``
with the same log-SNR, ``lambda_A(r) = lambda_B(t)``, and the scale ``s(t) = alpha_B(t) / alpha_A(r)``
(``= beta_B(t) / beta_A(r)``, which is the form used where alpha = 0). Then ``x_B = s x_A`` is distributed as
``alpha_B z + beta_B eps`` exactly when ``x_A`` is distributed as ``alpha_A z + beta_A eps``, with the same ``z``
and ``eps``; so the data and noise predictions are the same functions, ``D_B(x, t) = D_A(x / s, r)``, and the
probability-flow ODE of B is A's, reparameterized: ``x_B(t) = s(t) x_A(r(t))``. The wrapped field predicts data
on B; samplers convert it to whatever they need, through B's schedule.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fmcore.core.errors import FmError
from fmcore.core.field import Field, safe_time_range
from fmcore.core.path import GaussianPath
from fmcore.core.prediction import Prediction, convert


class PathTransform:
    """Called like a network on path B: A's field's prediction at ``(x / s, r)``, as a data prediction."""

    def __init__(self, field: Field, path: GaussianPath):
        self.field, self.path = field, path

    def matched(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(r, s)`` for B's times ``t`` [N], computed in float64: A's time at the same log-SNR (clamped into A's
        field range) and the scale ``x_B = s x_A``."""
        t64 = t.to(torch.float64)
        a = self.field.path
        r = a.t_from_log_snr(self.path.log_snr(t64)).clamp(*self.field.time_range)
        alpha_a, beta_a, _, _ = a.coefficients(r)
        alpha_b, beta_b, _, _ = self.path.coefficients(t64)
        scale = torch.where(alpha_a > 0, alpha_b / alpha_a.clamp_min(1e-300), beta_b / beta_a.clamp_min(1e-300))
        return r, scale

    def __call__(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        r, scale = self.matched(t)
        x_a = x / scale.to(x).reshape(-1, *([1] * (x.ndim - 1)))
        r = r.to(x)
        net = self.field.network
        pred = net(x_a, r) if cond is None else net(x_a, r, cond)
        return convert(pred, self.field.prediction, Prediction.DATA, x_a, self.field.path.schedule(r, x_a))


def transform_field(field: Field, path: GaussianPath, t_eps: float = 1e-3) -> Field:
    """``field`` (on a Gaussian path A) read along Gaussian path B through :class:`PathTransform`.

    Its time range is the image of A's range under the matched log-SNR, shrunk by ``t_eps`` where B's velocity is
    infinite (VP's t = 1), so every sampler can use it.
    """
    if not isinstance(field.path, GaussianPath) or not isinstance(path, GaussianPath):
        raise FmError(f"sampling along another path needs Gaussian paths on both sides; got "
                      f"{type(field.path).__name__} -> {type(path).__name__}: the transform matches alpha/beta")
    ends = field.path.log_snr(torch.tensor(field.time_range, dtype=torch.float64))
    lo, hi = (float(v) for v in path.t_from_log_snr(ends))
    safe_lo, safe_hi = safe_time_range(path, Prediction.VELOCITY, t_eps)
    lo, hi = max(lo, safe_lo), min(hi, safe_hi)
    if not lo < hi:
        raise FmError(f"the model's log-SNR range [{float(ends[0]):.3g}, {float(ends[1]):.3g}] does not overlap "
                      f"the path {type(path).__name__}'s; choose a path that covers it")
    return Field(PathTransform(field, path), path, Prediction.DATA, (lo, hi), field.cond, field.null_cond,
                 field.guidance)
