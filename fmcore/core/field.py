"""A field: a network read through a path and a parameterization, evaluated as velocity or score.

Samplers only ever see a :class:`Field`. It owns the time clamping that keeps conversions finite and
classifier-free guidance (``pred_uncond + w (pred_cond - pred_uncond)``, taken in the network's own
parameterization, which is equivalent in every other one because the conversions are affine).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from fmcore.core.path import GaussianPath, ProbabilityPath
from fmcore.core.prediction import Prediction, convert
from fmcore.core.tensors import as_time


class Predictor(Protocol):
    """Anything called like a network: ``f(x, t, cond) -> tensor shaped like x``."""

    def __call__(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor: ...


def singular_ends(path: ProbabilityPath, prediction: Prediction, *, exact: bool = False) -> list[str]:
    """Why a ``prediction`` on ``path`` cannot be trained or converted at t = 0 or t = 1 (empty if it can).

    At ``alpha_0 = 0`` the data cannot be recovered from a noise or score prediction; at ``beta_1 = 0`` the
    noise is not identifiable from ``x`` and the score is undefined; an infinite ``d_alpha``/``d_beta`` at
    an end makes the velocity infinite there.

    ``exact``: the less strict rule for a field reading an exact, finite prediction (not a training target):
    its velocity ``d_alpha E[z|x] + (beta d_beta) E[eps|x] / beta`` stays finite where ``d_alpha`` and the
    path's product ``beta d_beta`` are (VP at t = 1), except where the prediction does not determine it.
    """
    if not isinstance(path, GaussianPath):
        return []
    reasons = []
    start, end = path.endpoint(0.0), path.endpoint(1.0)
    if float(start.alpha) == 0.0 and prediction in (Prediction.NOISE, Prediction.SCORE):
        reasons.append("t=0: alpha_0 = 0, so the data cannot be recovered from a noise or score prediction")
    if float(end.beta) == 0.0:
        if not exact and prediction is not Prediction.VELOCITY:
            reasons.append("t=1: beta_1 = 0, where the score is undefined and the noise is not identifiable")
        elif exact and (prediction is Prediction.DATA or (
                prediction is Prediction.NOISE and not bool(torch.isfinite(end.d_beta)))):
            reasons.append("t=1: beta_1 = 0, where the noise cannot be recovered from this prediction")
    for name, sched in (("t=0", start), ("t=1", end)):
        if exact and not all(torch.isfinite(c) for c in (sched.d_alpha, sched.beta_d_beta)):
            reasons.append(f"{name}: d_alpha or beta d_beta is infinite, so the velocity is too")
        elif not exact and not all(torch.isfinite(c) for c in (sched.d_alpha, sched.d_beta)):
            reasons.append(f"{name}: the path's time derivatives are infinite, so the velocity is too")
    return reasons


def shrink(reasons: list[str], t_eps: float) -> tuple[float, float]:
    """``[0, 1]`` shrunk by ``t_eps`` at each end named in ``reasons``."""
    t_lo = t_eps if any(r.startswith("t=0") for r in reasons) else 0.0
    t_hi = 1.0 - t_eps if any(r.startswith("t=1") for r in reasons) else 1.0
    return t_lo, t_hi


def safe_time_range(path: ProbabilityPath, prediction: Prediction, t_eps: float) -> tuple[float, float]:
    """``[t_lo, t_hi]``: ``[0, 1]`` shrunk by ``t_eps`` at each end listed by :func:`singular_ends`."""
    return shrink(singular_ends(path, prediction), t_eps)


class Field:
    """``network`` (predicting ``prediction`` on ``path``) as velocity, score, data or noise.

    Time is clamped into ``time_range`` before the network is called. With ``guidance = w`` and a
    condition, the prediction is ``f(x, t, null) + w (f(x, t, cond) - f(x, t, null))``.
    """

    def __init__(
        self,
        network: Predictor,
        path: ProbabilityPath,
        prediction: Prediction = Prediction.VELOCITY,
        time_range: tuple[float, float] = (0.0, 1.0),
        cond: Tensor | None = None,
        null_cond: Tensor | None = None,
        guidance: float = 1.0,
    ):
        if prediction is not Prediction.VELOCITY and not isinstance(path, GaussianPath):
            raise ValueError(f"a {prediction.value} prediction needs a Gaussian path")
        self.network = network
        self.path = path
        self.prediction = prediction
        self.time_range = time_range
        self.cond = cond
        self.null_cond = null_cond
        self.guidance = guidance

    def raw(self, x: Tensor, t: Tensor | float) -> tuple[Tensor, Tensor]:
        """The network's own (guided) prediction and the clamped time it was made at."""
        t = as_time(t, x).clamp(*self.time_range)
        if self.cond is None:
            return self.network(x, t), t
        if self.guidance == 1.0:
            return self.network(x, t, self.cond), t
        if self.guidance == 0.0:
            return self.network(x, t, self.null_cond), t
        both = self.network(torch.cat([x, x]), torch.cat([t, t]), torch.cat([self.cond, self.null_cond]))
        cond, uncond = both.chunk(2)
        return uncond + self.guidance * (cond - uncond), t

    def predict(self, x: Tensor, t: Tensor | float, kind: Prediction) -> Tensor:
        """The field as a ``kind`` prediction at ``(x, t)``."""
        pred, t = self.raw(x, t)
        if kind is self.prediction:
            return pred
        return convert(pred, self.prediction, kind, x, self.path.schedule(t, x))

    def velocity(self, x: Tensor, t: Tensor | float) -> Tensor:
        """Marginal velocity ``u_t(x)``: the probability-flow ODE's right-hand side."""
        return self.predict(x, t, Prediction.VELOCITY)

    def score(self, x: Tensor, t: Tensor | float) -> Tensor:
        """Marginal score ``grad_x log p_t(x)``."""
        return self.predict(x, t, Prediction.SCORE)

    def velocity_and_score(self, x: Tensor, t: Tensor | float) -> tuple[Tensor, Tensor]:
        """Both, from one network evaluation (each exactly as :meth:`velocity` and :meth:`score` compute it)."""
        pred, t = self.raw(x, t)
        s = self.path.schedule(t, x)
        velocity = convert(pred, self.prediction, Prediction.VELOCITY, x, s)
        score = convert(pred, self.prediction, Prediction.SCORE, x, s)
        return velocity, score

    def select(self, rows: Tensor) -> Field:
        """The same field for the samples ``rows`` of the batch (their conditions; itself when unconditional)."""
        if self.cond is None:
            return self
        null = None if self.null_cond is None else self.null_cond[rows]
        return self.with_condition(self.cond[rows], null, self.guidance)

    def with_condition(self, cond: Tensor | None, null_cond: Tensor | None, guidance: float) -> Field:
        """The same field restricted to a batch's conditions (labels) and a guidance scale."""
        return Field(self.network, self.path, self.prediction, self.time_range, cond, null_cond, guidance)
