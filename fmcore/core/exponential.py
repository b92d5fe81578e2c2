"""Exponential integrators of the probability-flow ODE in data prediction (DDIM, DPM-Solver++, UniPC).

For ``x = alpha_t z + beta_t eps`` with the data prediction ``D(x, t) = E[z | x]`` and the noise prediction
``(x - alpha D) / beta``, the probability-flow ODE is ``dx/dt = (d_beta / beta) x + (d_alpha - alpha d_beta / beta) D``.
Variation of constants, with ``rho = alpha / beta = e^lambda`` (``lambda`` the log-SNR, increasing in t), gives
the exact step from ``t`` to a later ``s``:

    x_s = (beta_s / beta_t) x_t + beta_s * integral_{rho_t}^{rho_s} D d rho
        = (beta_s / beta_t) x_t + beta_s * integral_{lambda_t}^{lambda_s} e^lambda D d lambda.

With ``D`` constant (DDIM, DPM-Solver++ order 1) the integral is ``rho_s - rho_t``, so
``x_s = (beta_s / beta_t) x_t + (alpha_s - alpha_t beta_s / beta_t) D`` = ``... + alpha_s (1 - e^-h) D`` with
``h = lambda_s - lambda_t``; this form is finite at both infinite ends of lambda (alpha_t = 0: CondOT's t = 0;
beta_s = 0: VP's and CondOT's t = 1). Higher orders replace ``D`` by the polynomial through the last
data predictions (multistep) and integrate it exactly (:func:`step_weights`).

All coefficients are computed here in float64 (Python floats and float64 CPU tensors) from the host time grid,
once per run; the sample loop only forms ``a x + sum_j w_j D_j``.
"""

from __future__ import annotations

import math

import attrs
import numpy as np
import torch
from torch import Tensor

from fmcore.core.field import Field
from fmcore.core.noise import BatchNoise
from fmcore.core.path import GaussianPath
from fmcore.core.prediction import Prediction
from fmcore.core.sampler import Sampler, SampleResult


@attrs.frozen
class Point:
    """A grid time ``t`` and ``alpha, beta`` there (float64)."""

    t: float
    alpha: float
    beta: float

    @property
    def log_snr(self) -> float:
        """``lambda = log(alpha / beta)`` (-inf at alpha = 0, +inf at beta = 0)."""
        if self.alpha == 0.0:
            return -math.inf
        if self.beta == 0.0:
            return math.inf
        return math.log(self.alpha) - math.log(self.beta)


def grid_points(path: GaussianPath, times: torch.Tensor) -> list[Point]:
    """The schedule at each time of a float64 grid."""
    times = times.to(torch.float64)
    alpha, beta, _, _ = path.coefficients(times)
    return [Point(*map(float, p)) for p in zip(times, alpha, beta, strict=True)]


def first_order(t: Point, s: Point) -> tuple[float, float]:
    """``(a, b)`` with ``x_s = a x_t + b D``: ``a = beta_s / beta_t``, ``b = alpha_s - alpha_t beta_s / beta_t``."""
    a = s.beta / t.beta
    return a, s.alpha - t.alpha * a


def _lambda_moments(t: Point, s: Point, n: int) -> list[float]:
    """``beta_s int e^lam (lam - lam_t)^k d lam = alpha_s I_k(h)``, ``I_0 = 1 - e^-h``, ``I_k = h^k - k I_{k-1}``."""
    h = s.log_snr - t.log_snr
    moments, prev = [], -math.expm1(-h)
    moments.append(s.alpha * prev)
    for k in range(1, n):
        prev = h**k - k * prev
        moments.append(s.alpha * prev)
    return moments


def _sigma_moments(t: Point, s: Point, n: int) -> list[float]:
    """``beta_s int sigma^k d rho`` with ``sigma = 1 / rho``: ``k = 1``: ``beta_s h``; ``k >= 2``:
    ``beta_s (sigma_t^(k-1) - sigma_s^(k-1)) / (k - 1)`` (finite where beta_s = 0, where each is 0)."""
    sigma_t, sigma_s = t.beta / t.alpha, s.beta / s.alpha
    moments = []
    for k in range(1, n):
        if s.beta == 0.0:
            moments.append(0.0)
        elif k == 1:
            moments.append(s.beta * (s.log_snr - t.log_snr))
        else:
            moments.append(s.beta * (sigma_t ** (k - 1) - sigma_s ** (k - 1)) / (k - 1))
    return moments


def step_weights(t: Point, s: Point, nodes: list[Point]) -> list[float]:
    """Weights ``w_j`` of the data predictions ``D_j`` at ``nodes`` (``nodes[0]`` is usually ``t``) in
    ``x_s = (beta_s / beta_t) x_t + sum_j w_j D_j``: the exact integral of the polynomial through the nodes.

    The polynomial's variable is ``lambda - lambda_t`` (DPM-Solver++). Nodes at alpha = 0 (lambda = -inf, the
    start of CondOT) are left out, which lowers the order of the steps right after it; there D differs from its
    value at alpha = 0 only by O(alpha / beta) = O(e^lambda), so little is lost. A step into beta = 0
    (lambda_s = +inf, where every lambda moment but the first is infinite) interpolates in ``sigma = beta / alpha``
    instead: D is smooth in sigma at the data end, so the last step keeps the order. One node gives DDIM's weight
    ``alpha_s - alpha_t beta_s / beta_t`` in every variable.
    """
    m0 = first_order(t, s)[1]
    keep = [j for j, p in enumerate(nodes) if p.alpha > 0.0]
    if len(keep) < 2:
        return [m0 if j == 0 else 0.0 for j in range(len(nodes))]
    if s.beta == 0.0:
        values = [nodes[j].beta / nodes[j].alpha for j in keep]
        moments = [m0, *_sigma_moments(t, s, len(keep))]
    else:
        values = [nodes[j].log_snr - t.log_snr for j in keep]
        moments = _lambda_moments(t, s, len(keep))
    v = torch.tensor(values, dtype=torch.float64)
    vandermonde = v[:, None] ** torch.arange(len(keep), dtype=torch.float64)[None]  # [node, power]
    w = torch.linalg.solve(vandermonde.T, torch.tensor(moments, dtype=torch.float64))
    out = [0.0] * len(nodes)
    for j, wj in zip(keep, w.tolist(), strict=True):
        out[j] = wj
    return out
#: Gauss-Legendre nodes for the integrals of the time interpolant (exact for degree 2 * 24 - 1 in w)
QUADRATURE_NODES = 24

#: how the data prediction is interpolated between nodes: in log-SNR (DPM-Solver++) or in the path's time t
INTERPOLATIONS = ("log_snr", "time")


def time_weights(path: GaussianPath, t: Point, s: Point, nodes: list[Point]) -> list[float]:
    """:func:`step_weights` with the polynomial in the path's time ``t`` instead of lambda.

    With ``w = 1 - e^-(lambda_s - lambda)``, ``beta_s int e^lambda P d lambda = alpha_s int_0^{1 - e^-h} P(t(w)) dw``
    (``t(w)`` = the path's inverse log-SNR at ``lambda_s + log(1 - w)``), a finite integral of a smooth function
    whatever the ends: where ``beta_s = 0`` every ``t(w)`` is ``s`` (``x_s = alpha_s P(s)``), where ``alpha_t = 0``
    the interval is [0, 1]. Gauss-Legendre on ``w``; the weights integrate the Lagrange basis in t.
    D is smooth in t at both ends of CondOT and VP, so steps near the ends keep the order on any grid (in lambda,
    a grid uniform in t has steps of ~log 2 next to each infinite end, which caps the order at 2).
    """
    span = -math.expm1(-(s.log_snr - t.log_snr)) if math.isfinite(s.log_snr - t.log_snr) else 1.0
    if len(nodes) == 1:
        return [first_order(t, s)[1]]
    x, gw = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
    w = 0.5 * span * (x + 1.0)
    if math.isinf(s.log_snr):
        times = torch.full((QUADRATURE_NODES,), s.t, dtype=torch.float64)
    else:
        times = path.t_from_log_snr(torch.tensor(s.log_snr + np.log1p(-w), dtype=torch.float64))
    ts = torch.tensor([p.t for p in nodes], dtype=torch.float64)
    weights = []
    for j in range(len(nodes)):
        others = torch.cat([ts[:j], ts[j + 1:]])
        basis = ((times[:, None] - others[None]) / (ts[j] - others)[None]).prod(dim=1)
        weights.append(s.alpha * 0.5 * span * float((torch.tensor(gw) * basis).sum()))
    return weights


def weights_for(interpolation: str, path: GaussianPath, t: Point, s: Point, nodes: list[Point]) -> list[float]:
    """The step's weights with the data prediction interpolated in ``interpolation`` (:data:`INTERPOLATIONS`)."""
    return time_weights(path, t, s, nodes) if interpolation == "time" else step_weights(t, s, nodes)


class ExponentialSampler(Sampler):
    """Base of the data-prediction samplers: a float64 host grid, its schedule points and the loop helpers.

    Subclasses override :meth:`Sampler.run` (multistep state lives there, never on the sampler object);
    :meth:`step` is the one-step exponential (DDIM) update, for callers that step one interval at a time.
    """

    needs_gaussian_path = True

    def plan_grid(self, field: Field) -> tuple[torch.Tensor, list[Point]]:
        """The float64 host grid over :meth:`time_range` and the schedule at each of its times."""
        times = self.grid(field, "cpu")
        return times, grid_points(field.path, times)

    def step(self, field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise) -> Tensor:
        times = torch.stack([torch.as_tensor(t), torch.as_tensor(t_next)]).to("cpu", torch.float64)
        start, end = grid_points(field.path, times)
        a, b = first_order(start, end)
        return a * x + b * field.predict(x, t, Prediction.DATA)


class Recorder:
    """The states of a run when a trajectory is asked for: ``[steps + 1, N, ...]``."""

    def __init__(self, x: Tensor, on: bool):
        self.states = [x] if on else None

    def add(self, x: Tensor) -> None:
        if self.states is not None:
            self.states.append(x)

    def result(self, x: Tensor, nfe: int) -> SampleResult:
        return SampleResult(x, torch.stack(self.states) if self.states is not None else None, nfe)
