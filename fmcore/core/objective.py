"""Objectives: the training loss of a network on a path.

Every regression objective here has the form (DESIGN section 3)

    L = E_{t, z, eps} [ lambda(t) || f_theta(x_t, t) - target ||^2 ],   x_t = alpha_t z + beta_t eps,

where ``target`` is the exact conditional prediction of the objective's kind (velocity, score, noise or
data) computed once by :func:`fmcore.core.prediction.from_data_noise`. With ``target = "stable"`` the pair
``(z, eps)`` is replaced by its posterior mean over the batch's data points (the stable target field of
Xu et al. 2023), which has the same minimiser and lower variance. The pairs ``(eps, z)`` come from the
objective's :class:`~fmcore.core.coupling.Coupling` (independent unless the recipe names another).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import attrs
import torch
from torch import Tensor

from fmcore.core.coupling import Coupling, Independent
from fmcore.core.dataset import Batch
from fmcore.core.field import safe_time_range, singular_ends
from fmcore.core.options import Choice, help_field, in_range, nested, one_of
from fmcore.core.path import GaussianPath, PathSample, ProbabilityPath, Schedule
from fmcore.core.prediction import Prediction, conditional_target, from_data_noise
from fmcore.core.timedensity import TimeDensity, UniformTimes


@attrs.define(kw_only=True)
class ObjectiveOptions:
    """Options every objective has."""

    t_eps: float = help_field(
        0.0, "keep training times in [t_eps, 1 - t_eps] at ends where the target is singular",
        validator=in_range(0.0, 0.5, hi_open=True),
    )
    time_sampling: Choice = nested("time_density", "uniform", UniformTimes,
                                   "distribution of training times: a name ('uniform', 'logit_normal', ...) or an "
                                   "[objective.time_sampling] table")
    target: str = help_field(
        "conditional", "regress on one pair's target or the batch posterior mean ('stable')",
        validator=one_of(("conditional", "stable")),
    )
    cond_dropout: float = help_field(
        0.0, "probability of replacing a label by the null label (classifier-free guidance)",
        validator=in_range(0.0, 1.0),
    )


class Objective(abc.ABC):
    """A training loss. ``prediction`` says what the network it trains predicts."""

    Options: ClassVar[type] = ObjectiveOptions
    prediction: ClassVar[Prediction]
    #: the loss pairs noise and data through :attr:`coupling` (objectives that draw their own pairs: False)
    uses_coupling: ClassVar[bool] = False

    def __init__(self, options: ObjectiveOptions):
        self.options = options
        self.coupling: Coupling = Independent()
        density = getattr(options, "time_sampling", None)
        self.time_density: TimeDensity = density.create() if isinstance(density, Choice) else UniformTimes()
        self._time_ranges: dict[int, tuple[ProbabilityPath, tuple[float, float]]] = {}

    def time_range(self, path: ProbabilityPath) -> tuple[float, float]:
        """Times this objective trains on (and the field evaluates at) on ``path`` (computed once per path;
        the cache holds the path itself, so its id cannot be reused by another path while cached, and paths
        need not be hashable)."""
        if id(path) not in self._time_ranges:
            self._time_ranges[id(path)] = (path, safe_time_range(path, self.prediction, self.options.t_eps))
        return self._time_ranges[id(path)][1]

    def problems(self, path: ProbabilityPath) -> list[str]:
        """Why this objective cannot train on ``path`` with its options (empty when it can)."""
        if self.prediction is not Prediction.VELOCITY and not isinstance(path, GaussianPath):
            return [f"it predicts the {self.prediction.value}, which needs a Gaussian path"]
        if self.options.target == "stable" and not isinstance(path, GaussianPath):
            return ["target = 'stable' needs a Gaussian path"]
        reasons = singular_ends(path, self.prediction) if self.options.t_eps == 0.0 else []
        if reasons:
            reasons.append("set [objective] t_eps > 0 (e.g. 1e-3) so that training and sampling stay t_eps away "
                           "from those ends")
        return reasons

    def drop_labels(self, labels: Tensor | None, null_label: int) -> Tensor | None:
        """Replace each label by ``null_label`` with probability ``cond_dropout``."""
        p = self.options.cond_dropout
        if labels is None or p == 0.0:
            return labels
        drop = torch.rand(labels.shape, device=labels.device) < p
        return torch.where(drop, torch.full_like(labels, null_label), labels)

    def draw(self, path: ProbabilityPath, batch: Batch,
             null_label: int = 0) -> tuple[Tensor, PathSample, Tensor | None]:
        """The draws of one training step, in this order (it is part of what makes resume exact): times
        ``t`` from the time density on :meth:`time_range`, the coupling's noise for ``batch``, the path sample
        ``x_t = alpha_t z + beta_t eps``, and the labels after classifier-free dropout."""
        z = batch.x
        t = self.time_density.times(z.shape[0], self.time_range(path), z.device)
        ps = path.sample(z, t, self.coupling.noise(batch, path))
        return t, ps, self.drop_labels(batch.labels, null_label)

    @abc.abstractmethod
    def loss(self, network, path: ProbabilityPath, batch: Batch, null_label: int = 0) -> Tensor:
        """The scalar minibatch loss."""


def posterior_data_noise(ps: PathSample, allowed: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Batch posterior means ``(E[z | x_i], E[eps | x_i])`` over the batch's data points ``z_j``.

    ``w_ij ∝ N(x_i; alpha_i z_j, beta_i^2 I)`` over the ``j`` with ``allowed[i, j]`` (all when None; for a
    conditional model, the points of sample i's class); ``E[eps | x_i] = eps_i + alpha_i (z_i - z_bar_i) /
    beta_i``, written this way so that it stays exact as ``beta_i -> 0``.
    """
    s = ps.schedule
    x, z = ps.x.flatten(1), ps.z.flatten(1)
    alpha, beta2 = s.alpha.flatten()[:, None], (s.beta.flatten() ** 2).clamp_min(1e-30)[:, None]
    sq = (x**2).sum(1, keepdim=True) - 2 * alpha * (x @ z.T) + alpha**2 * (z**2).sum(1)[None]
    logits = -sq / (2 * beta2)
    if allowed is not None:
        logits = logits.masked_fill(~allowed, -torch.inf)
    weights = torch.softmax(logits, dim=1)
    z_bar = (weights @ z).view_as(ps.z)
    eps_bar = ps.eps + s.alpha * (ps.z - z_bar) / s.beta.clamp_min(1e-30)
    return z_bar, eps_bar


def same_condition(labels: Tensor, cond: Tensor, null_label: int) -> Tensor:
    """``allowed[i, j]``: data point j can explain sample i given i's condition ``cond_i`` (its label, or the
    null label after dropout, which every point can explain)."""
    return (cond[:, None] == labels[None, :]) | (cond[:, None] == null_label)


class RegressionObjective(Objective):
    """``lambda(t) || f(x_t, t) - target ||^2`` for the ``prediction`` of the subclass, on pairs ``(eps, z)``
    from the coupling."""

    uses_coupling = True

    def weight(self, s: Schedule) -> Tensor | None:
        """``lambda(t)`` (broadcastable against x), or None for 1."""
        return None

    def target(self, ps: PathSample, path: ProbabilityPath, allowed: Tensor | None = None) -> Tensor:
        """The regression target at ``ps`` (``allowed``: which batch points the stable target may average)."""
        if not isinstance(path, GaussianPath):
            return path.conditional_velocity(ps.x, ps.z, ps.t)
        if self.options.target != "stable":
            return conditional_target(ps, path, self.prediction)
        z, eps = posterior_data_noise(ps, allowed)
        return from_data_noise(z, eps, self.prediction, ps.schedule)

    def loss(self, network, path: ProbabilityPath, batch: Batch, null_label: int = 0) -> Tensor:
        o = self.options
        t, ps, cond = self.draw(path, batch, null_label)
        allowed = None if cond is None or o.target != "stable" else same_condition(batch.labels, cond, null_label)
        target = self.target(ps, path, allowed)  # from (t, z, eps) only: nothing in it requires a gradient
        pred = network(ps.x, t, cond)
        err = (pred.float() - target.float()) ** 2
        # the default weight is 1: the schedule is computed only for an objective that weights its loss
        w = None if type(self).weight is RegressionObjective.weight or ps.schedule is None else \
            self.weight(ps.schedule)
        if w is not None:
            err = err * w.float()
        return err.mean()

