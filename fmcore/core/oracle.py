"""Oracle fields: the exact marginal velocity, score, noise and data predictions of a Gaussian mixture.

For ``p_data = sum_k pi_k N(m_k, s_k^2 I)`` (an empirical distribution is the case ``s_k = 0``) and a
Gaussian path ``x = alpha_t z + beta_t eps``, component k stays Gaussian along the path:
``N(alpha_t m_k, v_k I)`` with ``v_k = alpha_t^2 s_k^2 + beta_t^2`` (DESIGN section 5). With posterior weights
``w_k(x) ∝ pi_k N(x; alpha m_k, v_k I)`` (a log-sum-exp softmax) and ``r_k = (x - alpha m_k) / v_k``:

    score           = -sum_k w_k r_k
    noise  E[eps|x] =  beta sum_k w_k r_k
    data   E[z|x]   =  sum_k w_k (m_k + alpha s_k^2 r_k)
    velocity        =  d_alpha E[z|x] + d_beta E[eps|x] = d_alpha E[z|x] + (beta d_beta) sum_k w_k r_k

An :class:`Oracle` is called like a network, ``oracle(x, t, cond=None)``, so it can be wrapped in
:class:`fmcore.Field` with any parameterization (:func:`oracle_field`).
"""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from fmcore.core.errors import FmError
from fmcore.core.field import Field, shrink, singular_ends
from fmcore.core.path import GaussianPath, ProbabilityPath
from fmcore.core.prediction import Prediction


@attrs.frozen
class GaussianMixture:
    """``sum_k weights_k N(means_k, stds_k^2 I)``: means [K, *shape], stds [K] (>= 0), weights [K] (sum 1)."""

    means: Tensor
    stds: Tensor
    weights: Tensor

    def __attrs_post_init__(self):
        k = self.means.shape[0]
        if self.stds.shape != (k,) or self.weights.shape != (k,):
            raise ValueError(f"mixture of {k} components needs stds and weights of shape [{k}], got "
                             f"{tuple(self.stds.shape)} and {tuple(self.weights.shape)}")
        if bool((self.stds < 0).any()) or bool((self.weights < 0).any()):
            raise ValueError("mixture stds and weights must be >= 0")

    @classmethod
    def isotropic(cls, means: Tensor, std: float | Tensor, weights: Tensor | None = None) -> GaussianMixture:
        """Components ``N(m_k, std^2 I)`` with the given (normalised) or equal weights."""
        means = torch.as_tensor(means, dtype=torch.float64)
        k = means.shape[0]
        stds = torch.as_tensor(std, dtype=torch.float64).expand(k).clone()
        w = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else \
            torch.as_tensor(weights, dtype=torch.float64)
        return cls(means, stds, w / w.sum())

    @classmethod
    def empirical(cls, points: Tensor) -> GaussianMixture:
        """The empirical distribution of ``points`` [K, *shape] (point masses, equal weights)."""
        points = torch.as_tensor(points, dtype=torch.float64)
        k = points.shape[0]
        return cls(points, torch.zeros(k, dtype=torch.float64), torch.full((k,), 1.0 / k, dtype=torch.float64))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.means.shape[1:])

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` exact draws (float64, CPU)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn((n, *self.shape), generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k].reshape(n, *([1] * len(self.shape))) * eps

    def log_prob(self, x: Tensor) -> Tensor:
        """``log sum_k pi_k N(x; m_k, s_k^2 I)`` per point [N] (in ``x``'s dtype; needs every ``s_k > 0``)."""
        means, var = self.means.flatten(1).to(x), (self.stds**2).to(x)
        d = means.shape[1]
        sq = ((x.flatten(1)[:, None, :] - means[None]) ** 2).sum(-1)
        logs = self.weights.to(x).log()[None] - 0.5 * sq / var[None] - 0.5 * d * torch.log(2 * torch.pi * var)[None]
        return torch.logsumexp(logs, dim=1)

    def at(self, path: GaussianPath, t: float) -> GaussianMixture:
        """The path's marginal at time ``t``: components ``N(alpha m_k, (alpha^2 s_k^2 + beta^2) I)``."""
        s = path.endpoint(t)
        stds = torch.sqrt(s.alpha**2 * self.stds**2 + s.beta**2)
        return GaussianMixture(s.alpha * self.means, stds, self.weights)


class Oracle:
    """The exact marginal ``prediction`` (velocity, score, noise or data) of ``mixture`` on ``path``.

    Called like a network: ``oracle(x, t, cond=None)`` with ``x`` [N, *shape] and ``t`` [N]; ``cond`` is ignored.
    Computed in ``x``'s dtype (use float64 for convergence studies).
    """

    def __init__(self, mixture: GaussianMixture, path: GaussianPath, prediction: Prediction = Prediction.VELOCITY):
        if not isinstance(path, GaussianPath):
            raise FmError(f"an oracle field needs a Gaussian path, got {type(path).__name__}")
        self.mixture, self.path, self.prediction = mixture, path, prediction
        self._cache: dict[tuple, tuple[Tensor, Tensor, Tensor]] = {}

    def _params(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        key = (x.device, x.dtype)
        if key not in self._cache:
            m = self.mixture
            self._cache[key] = (m.means.flatten(1).to(x), m.stds.to(x) ** 2, m.weights.to(x).log())
        return self._cache[key]

    def __call__(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        means, var0, log_pi = self._params(x)
        s = self.path.schedule(t, x)
        xf = x.flatten(1)
        n, d = xf.shape
        alpha, beta = s.alpha.reshape(n, 1), s.beta.reshape(n, 1)
        var = alpha**2 * var0[None] + beta**2  # [N, K]
        if n * means.shape[0] * d <= 2**24:  # direct differences: exact even when var is tiny
            sq = ((xf[:, None, :] - alpha[:, :, None] * means[None]) ** 2).sum(-1)
        else:
            sq = ((xf**2).sum(1, keepdim=True) - 2 * alpha * (xf @ means.T)
                  + alpha**2 * (means**2).sum(1)[None]).clamp_min(0)
        w = torch.softmax(log_pi[None] - 0.5 * d * var.log() - 0.5 * sq / var, dim=1)
        c = w / var
        r = c.sum(1, keepdim=True) * xf - alpha * (c @ means)  # sum_k w_k (x - alpha m_k) / v_k
        kind = self.prediction
        if kind is Prediction.SCORE:
            out = -r
        elif kind is Prediction.NOISE:
            out = beta * r
        else:
            cs = c * var0[None]
            z = w @ means + alpha * (cs.sum(1, keepdim=True) * xf - alpha * (cs @ means))
            if kind is Prediction.DATA:
                out = z
            else:
                out = s.d_alpha.reshape(n, 1) * z + s.beta_d_beta.reshape(n, 1) * r
        return out.view_as(x)


def oracle_time_range(mixture: GaussianMixture, path: ProbabilityPath, prediction: Prediction,
                      t_eps: float) -> tuple[float, float]:
    """``[0, 1]`` shrunk by ``t_eps`` at the ends where the field's conversion is singular
    (:func:`fmcore.core.field.singular_ends` with ``exact``; VP's velocity is finite at t = 1), and at t = 1 when the
    mixture has point masses and ``beta_1 = 0`` (the marginal is then a sum of deltas: velocity and score are
    singular)."""
    lo, hi = shrink(singular_ends(path, prediction, exact=True), t_eps)
    if bool((mixture.stds == 0).any()) and float(path.endpoint(1.0).beta) == 0.0:
        hi = min(hi, 1.0 - t_eps)
    return lo, hi


def oracle_field(mixture: GaussianMixture, path: GaussianPath, prediction: Prediction = Prediction.VELOCITY,
                 t_eps: float = 1e-3) -> Field:
    """A :class:`Field` reading the oracle's ``prediction`` (any kind), on the time range where it is finite."""
    return Field(Oracle(mixture, path, prediction), path, prediction,
                 oracle_time_range(mixture, path, prediction, t_eps))



def reference_flow(mixture: GaussianMixture, path: GaussianPath, x: Tensor, t_range: tuple[float, float] = (0.0, 1.0),
                   steps: int = 1000) -> Tensor:
    """The mixture's probability-flow ODE solved accurately from ``x`` at ``t_range[0]`` to ``t_range[1]``.

    Classical RK4 in the angle variables (fmcore/core/angle.py), ``dx~/dtheta = -sin(theta) D + cos(theta) eps_hat``
    with the exact data and noise predictions, on ``steps`` equal steps of theta: finite at both ends (alpha = 0,
    beta = 0), independent of every sampler. Use float64; 1,000 and 2,000 steps agree to ~1e-12 on a std-0.5
    mixture.
    """
    from fmcore.core.angle import angle_times, path_angle

    data, noise = Oracle(mixture, path, Prediction.DATA), Oracle(mixture, path, Prediction.NOISE)
    times = angle_times(path, 2 * steps, t_range)
    thetas = path_angle(path, times)
    alpha, beta, _, _ = path.coefficients(times)
    nu = torch.sqrt(alpha**2 + beta**2).to(x)
    thetas, times = thetas.to(x), times.to(x)

    def rate(y: Tensor, j: int) -> Tensor:
        t, xx = times[j].expand(y.shape[0]), y * nu[j]
        return -torch.sin(thetas[j]) * data(xx, t) + torch.cos(thetas[j]) * noise(xx, t)

    y = x / nu[0]
    for i in range(steps):
        k = thetas[2 * i + 2] - thetas[2 * i]
        k1 = rate(y, 2 * i)
        k2 = rate(y + 0.5 * k * k1, 2 * i + 1)
        k3 = rate(y + 0.5 * k * k2, 2 * i + 1)
        y = y + k / 6 * (k1 + 2 * k2 + 2 * k3 + rate(y + k * k3, 2 * i + 2))
    return y * nu[-1]
