"""Probability paths: how data ``z`` at t = 1 is joined to noise at t = 0.

fmcore's convention (docs/concepts.md): time runs from noise (t = 0) to data (t = 1). A Gaussian path has
conditional distributions ``p_t(x | z) = N(alpha_t z, beta_t^2 I)`` and is sampled as
``x = alpha_t z + beta_t eps`` with ``eps ~ N(0, I)``.
"""

from __future__ import annotations

import abc
import functools
import math
from typing import ClassVar

import attrs
import torch
from torch import Tensor

from fmcore.core.tensors import as_per_sample, as_time, combine, expand_like

#: Bisection steps when inverting a monotone function of t on [0, 1]: 2^-60 is below float64 resolution.
BISECTION_STEPS = 60


@attrs.frozen
class Schedule:
    """``alpha_t, beta_t`` and their time derivatives, each shaped to broadcast against ``x``.

    ``beta_d_beta`` is the product ``beta_t d beta_t/dt``, given by the path where it is finite although
    ``d_beta`` is not (VP at t = 1: ``beta = 0``, ``d_beta = -inf``, ``beta d_beta = -alpha d_alpha``); by default
    it is the plain product.
    """

    alpha: Tensor
    beta: Tensor
    d_alpha: Tensor
    d_beta: Tensor
    beta_d_beta: Tensor = attrs.field(default=attrs.Factory(lambda s: s.beta * s.d_beta, takes_self=True))

    @property
    def determinant(self) -> Tensor:
        """``D = beta d_alpha - alpha d_beta``: the velocity <-> (data, noise) map is invertible iff D != 0."""
        return self.beta * self.d_alpha - self.alpha * self.d_beta


@attrs.frozen(slots=False)
class PathSample:
    """A point on the path: ``x = alpha_t z + beta_t eps`` at time ``t`` (shape [N]) for data ``z``.

    A Gaussian path also records ``alpha``, ``beta`` (its :meth:`GaussianPath.signal_noise`, shaped like
    ``t_x``: ``t`` viewed as [N, 1, ..., 1] to broadcast against ``x``; or floats) and itself, so that a target
    needs no recomputation and the full :attr:`schedule` is computed only when something reads it (a loss
    weight, the stable target).
    """

    x: Tensor
    t: Tensor
    z: Tensor
    eps: Tensor
    alpha: Tensor | float | None = attrs.field(default=None, repr=False, eq=False)
    beta: Tensor | float | None = attrs.field(default=None, repr=False, eq=False)
    t_x: Tensor | None = attrs.field(default=None, repr=False, eq=False)
    path: GaussianPath | None = attrs.field(default=None, repr=False, eq=False)

    @functools.cached_property
    def schedule(self) -> Schedule | None:
        """The path's full schedule at ``t`` shaped like ``x`` (None off Gaussian paths), computed once."""
        return None if self.path is None else self.path.schedule(self.t, self.x)


class ProbabilityPath(abc.ABC):
    """A family of conditional paths ``p_t(. | z)`` from the prior (t = 0) to data ``z`` (t = 1).

    Subclasses supply the prior, a way to draw ``x_t`` given ``(z, eps)`` and the conditional velocity
    ``u_t(x | z)``. A non-Gaussian path trains with velocity-predicting objectives only.
    """

    Options: ClassVar[type]

    @abc.abstractmethod
    def prior_sample(self, eps: Tensor) -> Tensor:
        """Map standard normal noise ``eps`` to a draw from the prior ``p_0``."""

    @abc.abstractmethod
    def sample(self, z: Tensor, t: Tensor, eps: Tensor) -> PathSample:
        """Draw ``x_t ~ p_t(. | z)`` using standard normal noise ``eps`` shaped like ``z``."""

    @abc.abstractmethod
    def conditional_velocity(self, x: Tensor, z: Tensor, t: Tensor) -> Tensor:
        """``u_t(x | z)``: the velocity of the conditional flow through ``x`` at time ``t``."""

    def prior_log_prob(self, x: Tensor, t: float = 0.0) -> Tensor:
        """``log p_t(x)`` at the noise end (``t = 0``, or just above it) summed over the non-batch dimensions,
        shape [N] (for likelihoods)."""
        from fmcore.core.errors import FmError

        raise FmError(f"the path {type(self).__name__} does not state its prior density (prior_log_prob), so "
                      f"log-densities cannot be computed on it; implement prior_log_prob(x) in the path")


class GaussianPath(ProbabilityPath):
    """``p_t(x | z) = N(alpha_t z, beta_t^2 I)``; subclasses implement :meth:`coefficients`.

    Conditional velocity ``u_t(x|z) = d_alpha z + d_beta eps`` with ``eps = (x - alpha z) / beta``,
    conditional score ``grad_x log p_t(x|z) = -(x - alpha z) / beta^2``.
    """

    @abc.abstractmethod
    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(alpha_t, beta_t, d alpha_t/dt, d beta_t/dt)`` for times ``t`` of shape [N]."""

    def signal_noise(self, t: Tensor) -> tuple[Tensor | float, Tensor | float]:
        """``(alpha_t, beta_t)`` at times ``t`` of shape [N, 1, ..., 1] (as :meth:`sample` passes them, to
        broadcast against ``x``): tensors of ``t``'s shape, or Python floats where constant in time. Paths
        override it to skip the derivatives (default: from :meth:`coefficients`)."""
        alpha, beta, _, _ = self.coefficients(t.flatten())
        return alpha.view_as(t), beta.view_as(t)

    def rates(self, t: Tensor, alpha: Tensor | float, beta: Tensor | float) -> tuple[Tensor | float, Tensor | float]:
        """``(d alpha_t/dt, d beta_t/dt)`` at ``t`` [N, 1, ..., 1], given ``(alpha_t, beta_t)`` from
        :meth:`signal_noise` (for paths that reuse them): tensors of ``t``'s shape or floats. Only a velocity
        target needs them (default: from :meth:`coefficients`)."""
        _, _, d_alpha, d_beta = self.coefficients(t.flatten())
        return d_alpha.view_as(t), d_beta.view_as(t)

    def beta_d_beta(self, alpha: Tensor, beta: Tensor, d_alpha: Tensor, d_beta: Tensor) -> Tensor:
        """``beta_t d beta_t/dt`` from the coefficients; a path whose ``d_beta`` is infinite where this product
        is finite (VP at t = 1) overrides it with the finite expression."""
        return beta * d_beta

    def _schedule(self, t: Tensor) -> tuple[Tensor, ...]:
        coeffs = self.coefficients(t)
        return (*coeffs, self.beta_d_beta(*coeffs))

    def schedule(self, t: Tensor | float, like: Tensor) -> Schedule:
        """The coefficients at ``t``, shaped to broadcast against ``like`` (any [N, ...] shape)."""
        t = as_time(t, like)
        return Schedule(*(expand_like(c, like) for c in self._schedule(t)))

    def endpoint(self, t: float) -> Schedule:
        """The coefficients at a single time, as 0-d float64 tensors (for checks, not hot loops)."""
        return Schedule(*(c[0] for c in self._schedule(torch.tensor([t], dtype=torch.float64))))

    def log_snr(self, t: Tensor) -> Tensor:
        """``lambda_t = log(alpha_t / beta_t)`` (float64 in, float64 out): -inf where alpha = 0, +inf where beta = 0.

        Increasing in t on every path with ``D = beta d_alpha - alpha d_beta > 0`` (CondOT, VP, VE).
        """
        alpha, beta, _, _ = self.coefficients(t.to(torch.float64))
        return torch.log(alpha) - torch.log(beta)

    def t_from_log_snr(self, lam: Tensor) -> Tensor:
        """The time with ``lambda_t = lam`` (float64, any shape), clamped to [0, 1] outside the path's range.

        Default: bisection on :meth:`log_snr` over [0, 1] (60 halvings, below float64 resolution); paths with a
        closed-form inverse override it (and :meth:`t_from_sigma`).
        """
        lam = torch.as_tensor(lam, dtype=torch.float64)
        a, b = torch.zeros_like(lam), torch.ones_like(lam)
        for _ in range(BISECTION_STEPS):
            mid = 0.5 * (a + b)
            below = self.log_snr(mid.reshape(-1)).reshape(lam.shape) < lam
            a, b = torch.where(below, mid, a), torch.where(below, b, mid)
        return 0.5 * (a + b)

    def t_from_sigma(self, sigma: Tensor) -> Tensor:
        """The time with ``beta_t / alpha_t = sigma`` (EDM's noise level): ``t_from_log_snr(-log sigma)``."""
        return self.t_from_log_snr(-torch.log(torch.as_tensor(sigma, dtype=torch.float64)))

    @property
    def prior_std(self) -> float:
        """Standard deviation of the prior ``N(0, beta_0^2 I)`` (alpha_0 z is neglected where alpha_0 != 0)."""
        return float(self.endpoint(0.0).beta)

    def prior_sample(self, eps: Tensor) -> Tensor:
        return self.prior_std * eps

    def prior_log_prob(self, x: Tensor, t: float = 0.0) -> Tensor:
        """``log N(x; 0, beta_t^2 I)`` summed over the non-batch dimensions (``t = 0``: the prior, or where a
        likelihood integration stops). Where ``alpha_t != 0`` (VP, VE) the true marginal is the law of
        ``alpha_t z + beta_t eps``; for data with ``|z| <= R`` the neglected ``log p_t(x) - log N(x; 0, beta_t^2 I)``
        lies within ``+-(alpha_t |x| R + alpha_t^2 R^2 / 2) / beta_t^2`` (docs/likelihood.md)."""
        var = float(self.endpoint(t).beta) ** 2 if t != 0.0 else self.prior_std**2
        dim = x[0].numel()
        return -0.5 * (x.flatten(1) ** 2).sum(1) / var - 0.5 * dim * math.log(2 * math.pi * var)

    def sample(self, z: Tensor, t: Tensor, eps: Tensor) -> PathSample:
        t = as_time(t, z)
        t_x = as_per_sample(t, z)
        alpha, beta = self.signal_noise(t_x)
        return PathSample(combine(alpha, z, beta, eps), t, z, eps, alpha, beta, t_x, self)  # positional: faster

    def conditional_velocity(self, x: Tensor, z: Tensor, t: Tensor) -> Tensor:
        s = self.schedule(t, x)
        return s.d_alpha * z + s.d_beta * (x - s.alpha * z) / s.beta

    def conditional_score(self, x: Tensor, z: Tensor, t: Tensor) -> Tensor:
        s = self.schedule(t, x)
        return -(x - s.alpha * z) / s.beta**2

    def conditional_log_prob(self, x: Tensor, z: Tensor, t: Tensor) -> Tensor:
        """``log N(x; alpha_t z, beta_t^2 I)`` summed over the non-batch dimensions, shape [N]."""
        s = self.schedule(t, x)
        dim = x[0].numel()
        sq = ((x - s.alpha * z) ** 2).flatten(1).sum(1)
        beta = s.beta.flatten()
        return -0.5 * sq / beta**2 - dim * torch.log(beta) - 0.5 * dim * math.log(2 * math.pi)
