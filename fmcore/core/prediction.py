"""The four things a network can predict on a Gaussian path, and the one conversion between them.

Given ``x = alpha z + beta eps`` and ``u = d_alpha z + d_beta eps`` (DESIGN section 2), with
``D = beta d_alpha - alpha d_beta``:

    velocity v  ->  z = (beta v - d_beta x) / D,   eps = (d_alpha x - alpha v) / D
    score s     ->  eps = -beta s,                  z = (x - beta eps) / alpha
    noise eps   ->                                  z = (x - beta eps) / alpha
    data z      ->  eps = (x - alpha z) / beta

and back: ``v = d_alpha z + d_beta eps``, ``s = -eps / beta``. Between velocity and score the maps are written
with the product ``beta d_beta`` (finite on VP at t = 1, where ``d_beta`` is infinite and ``beta = 0``):

    s = (alpha v - d_alpha x) / (beta^2 d_alpha - alpha beta d_beta)
    v = d_alpha (x + beta^2 s) / alpha - beta d_beta s

and the data implied by a velocity uses ``d_beta / D = beta d_beta / (beta^2 d_alpha - alpha beta d_beta)`` where
``d_beta`` is infinite. Every map is affine in the prediction with
coefficients that depend only on ``(x, t)``, which is why classifier-free guidance and averaging commute
with it (docs/concepts.md). Plugins never repeat these formulas: they name a :class:`Prediction`.
"""

from __future__ import annotations

import enum

import torch
from torch import Tensor

from fmcore.core.path import GaussianPath, PathSample, Schedule
from fmcore.core.tensors import combine


class Prediction(enum.Enum):
    """What a network's output means."""

    VELOCITY = "velocity"
    SCORE = "score"
    NOISE = "noise"
    DATA = "data"


def to_data_noise(pred: Tensor, kind: Prediction, x: Tensor, s: Schedule) -> tuple[Tensor, Tensor]:
    """``(z_hat, eps_hat)`` implied by a prediction of ``kind`` at ``x``."""
    if kind is Prediction.VELOCITY:
        det = s.determinant
        finite = torch.isfinite(s.d_beta)  # depends on t only, so the switch never blocks gradients in x
        x_coef = torch.where(finite, s.d_beta / det, s.beta_d_beta / _scaled_determinant(s))
        return (s.beta / det) * pred - x_coef * x, (s.d_alpha * x - s.alpha * pred) / det
    if kind is Prediction.DATA:
        return pred, (x - s.alpha * pred) / s.beta
    eps = -s.beta * pred if kind is Prediction.SCORE else pred
    return (x - s.beta * eps) / s.alpha, eps


def _scaled_determinant(s: Schedule) -> Tensor:
    """``beta D = beta^2 d_alpha - alpha beta d_beta``, finite where ``beta d_beta`` is."""
    return s.beta**2 * s.d_alpha - s.alpha * s.beta_d_beta


def from_data_noise(z: Tensor, eps: Tensor, kind: Prediction, s: Schedule) -> Tensor:
    """The prediction of ``kind`` that corresponds to data ``z`` and noise ``eps``."""
    if kind is Prediction.VELOCITY:
        return s.d_alpha * z + s.d_beta * eps
    if kind is Prediction.SCORE:
        return -eps / s.beta
    if kind is Prediction.NOISE:
        return eps
    return z


_VELOCITY, _SCORE, _NOISE = Prediction.VELOCITY, Prediction.SCORE, Prediction.NOISE  # plain globals: faster


def conditional_target(ps: PathSample, path: GaussianPath, kind: Prediction) -> Tensor:
    """:func:`from_data_noise` of ``(ps.z, ps.eps)``, computing only what ``kind`` needs: nothing for noise and
    data, ``beta_t`` (already in ``ps``) for the score, the path's :meth:`~GaussianPath.rates` for the velocity
    ``d_alpha z + d_beta eps`` (one expression; constant rates are floats). A sample without its coefficients
    (a path that overrides ``sample``) goes through the full schedule."""
    if ps.t_x is None:
        return from_data_noise(ps.z, ps.eps, kind, path.schedule(ps.t, ps.z))
    if kind is _VELOCITY:
        d_alpha, d_beta = path.rates(ps.t_x, ps.alpha, ps.beta)
        return combine(d_alpha, ps.z, d_beta, ps.eps)
    if kind is _SCORE:
        return -ps.eps / ps.beta
    return ps.eps if kind is _NOISE else ps.z


def convert(pred: Tensor, source: Prediction, target: Prediction, x: Tensor, s: Schedule) -> Tensor:
    """Re-express ``pred`` (a ``source`` prediction at ``x``) as a ``target`` prediction."""
    if source is target:
        return pred
    if {source, target} == {Prediction.SCORE, Prediction.NOISE}:
        return -s.beta * pred if source is Prediction.SCORE else -pred / s.beta
    if (source, target) == (Prediction.VELOCITY, Prediction.SCORE):
        return (s.alpha * pred - s.d_alpha * x) / _scaled_determinant(s)
    if (source, target) == (Prediction.SCORE, Prediction.VELOCITY):
        return s.d_alpha * (x + s.beta**2 * pred) / s.alpha - s.beta_d_beta * pred
    z, eps = to_data_noise(pred, source, x, s)
    return from_data_noise(z, eps, target, s)
