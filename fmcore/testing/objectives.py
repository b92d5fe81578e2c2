"""The objective kit: zero loss at the exact target, the target against the path's own conditional quantities,
gradients reaching every network parameter."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from fmcore.core.dataset import Batch
from fmcore.core.objective import Objective, RegressionObjective
from fmcore.core.path import GaussianPath, ProbabilityPath
from fmcore.core.prediction import Prediction
from fmcore.testing.common import DEFAULT_SHAPES, VECTOR_SHAPE, ReferencePath, close, declared, interior_times, randn


def exact_target(path: ProbabilityPath, prediction: Prediction, x: Tensor, z: Tensor, t: Tensor) -> Tensor:
    """The exact conditional target of ``prediction`` at ``(x, t)`` given data ``z``, from the path's own
    conditional velocity and score (not from :func:`fmcore.core.prediction.from_data_noise`)."""
    if prediction is Prediction.VELOCITY:
        return path.conditional_velocity(x, z, t)
    if prediction is Prediction.DATA:
        return z.expand_as(x)
    if not isinstance(path, GaussianPath):
        raise TypeError(f"a {prediction.value} target needs a Gaussian path")
    if prediction is Prediction.SCORE:
        return path.conditional_score(x, z, t)
    s = path.schedule(t, x)
    return (x - s.alpha * z) / s.beta


class ExactTargetNetwork(nn.Module):
    """A "network" that knows the one data point ``z0`` behind every batch and returns the exact target.

    With a batch made of copies of ``z0`` the conditional target is a function of ``(x, t)`` only, so an
    objective's loss must be zero for this network, whatever times and noise it draws.
    """

    def __init__(self, path: ProbabilityPath, prediction: Prediction, z0: Tensor):
        super().__init__()
        self.path, self.prediction, self.z0 = path, prediction, z0

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        return exact_target(self.path, self.prediction, x, self.z0.to(x).expand_as(x), t.to(x))


class TinyNetwork(nn.Module):
    """A linear map of ``[flatten(x), t]`` back to x's shape: enough to check that gradients flow."""

    def __init__(self, shape: Sequence[int], seed: int = 0):
        super().__init__()
        dim = math.prod(shape)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.linear = nn.Linear(dim + 1, dim)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        h = torch.cat([x.flatten(1), t.to(x.dtype)[:, None]], dim=1)
        return self.linear.to(x.dtype)(h).view_as(x)


def _objective_problems(objective: Objective, path: ProbabilityPath) -> None:
    problems = objective.problems(path)
    if problems:
        raise AssertionError(f"{type(objective).__name__} cannot train on {type(path).__name__} with these options: "
                             + "; ".join(problems) + " (choose another path or options in the conformance test)")


def check_objective_exact_target(objective: Objective, path: ProbabilityPath, shape: Sequence[int] = VECTOR_SHAPE,
                                 n: int = 256, seed: int = 0, rel_tol: float = 1e-6) -> None:
    """The loss of :class:`ExactTargetNetwork` on a batch of copies of one data point is zero (relative to
    the loss of a network that predicts 0), in float64. An objective that is not a regression (its loss is
    minimal, not zero, at the exact prediction, e.g. score matching) must score lower there than at 0 and at
    1.5 times the exact prediction, with the same draws."""
    _objective_problems(objective, path)
    z0 = randn((1, *shape), seed + 20)
    batch = Batch(z0.expand(n, *shape).clone())
    exact_net = ExactTargetNetwork(path, objective.prediction, z0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        exact = objective.loss(exact_net, path, batch)
        torch.manual_seed(seed)
        zero = objective.loss(lambda x, t, cond=None: 0 * exact_net(x, t, cond), path, batch)
        torch.manual_seed(seed)
        over = objective.loss(lambda x, t, cond=None: 1.5 * exact_net(x, t, cond), path, batch)
    if exact.ndim != 0 or not torch.isfinite(exact):
        raise AssertionError(f"loss is {exact!r}, expected a finite scalar")
    exact, zero, over = exact.detach(), zero.detach(), over.detach()
    if not isinstance(objective, RegressionObjective):
        if not float(exact) < min(float(zero), float(over)):
            raise AssertionError(f"the loss at the exact {objective.prediction.value} is {float(exact):.4g}, not "
                                 f"below its value at 0 ({float(zero):.4g}) and at 1.5 x the exact "
                                 f"{objective.prediction.value} ({float(over):.4g})")
        return
    if not float(zero) > 0:
        raise AssertionError(f"the loss of a network predicting 0 is {float(zero)!r}, expected > 0")
    if not float(exact) <= rel_tol * float(zero):
        raise AssertionError(f"the loss at the exact {objective.prediction.value} target is {float(exact):.3g}, "
                             f"not ~0 (a network predicting 0 scores {float(zero):.3g})")


def check_objective_target(objective: Objective, path: ProbabilityPath, shape: Sequence[int] = VECTOR_SHAPE,
                           n: int = 64, rtol: float = 1e-6, atol: float = 1e-6) -> None:
    """For a :class:`~fmcore.RegressionObjective` with ``target = "conditional"``: ``target(sample)`` equals the
    path's own conditional quantity of the objective's prediction (float64, inside its time range)."""
    if not isinstance(objective, RegressionObjective) or getattr(objective.options, "target", None) != "conditional":
        return
    z, eps = randn((n, *shape), 30), randn((n, *shape), 31)
    lo, hi = objective.time_range(path)
    t = lo + (hi - lo) * interior_times(n, 32, 0.02)
    ps = path.sample(z, t, eps)
    close(objective.target(ps, path), exact_target(path, objective.prediction, ps.x, z, t),
           f"{type(objective).__name__}.target against the exact {objective.prediction.value}", rtol, atol)


def check_objective_gradients(objective: Objective, path: ProbabilityPath,
                              shapes: Sequence[Sequence[int]] = DEFAULT_SHAPES, n: int = 32) -> None:
    """The loss is a finite scalar for vector and image data, and its gradient reaches every parameter."""
    _objective_problems(objective, path)
    for shape in shapes:
        net = TinyNetwork(shape)
        batch = Batch(randn((n, *shape), 40, torch.float32))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            loss = objective.loss(net, path, batch)
        if loss.ndim != 0 or not torch.isfinite(loss):
            raise AssertionError(f"loss for data of shape {tuple(shape)} is {loss!r}, expected a finite scalar")
        loss.backward()
        for name, p in net.named_parameters():
            if p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.abs().sum() > 0:
                raise AssertionError(f"no finite, non-zero gradient reaches parameter {name!r} "
                                     f"(data of shape {tuple(shape)}; grad {p.grad!r})")


def check_objective(objective: Objective, path: ProbabilityPath) -> None:
    """Every objective check on one path."""
    for shape in DEFAULT_SHAPES:
        check_objective_exact_target(objective, path, shape)
        check_objective_target(objective, path, shape)
    check_objective_gradients(objective, path)


class ObjectiveConformance:
    """Subclass with ``objective = MyObjective(MyObjective.Options(...))`` and optionally ``paths``
    (default: :class:`ReferencePath`, a linear Gaussian path with sigma_min = 0.01)."""

    objective: ClassVar[Objective | None] = None
    paths: ClassVar[Sequence[ProbabilityPath]] = ()
    shapes: ClassVar[tuple[tuple[int, ...], ...]] = DEFAULT_SHAPES

    def make_objective(self) -> Objective:
        return declared(self, "objective")

    def make_paths(self) -> Sequence[ProbabilityPath]:
        return self.paths or (ReferencePath(),)

    def test_objective_zero_loss_at_exact_target(self) -> None:
        for path in self.make_paths():
            for shape in self.shapes:
                check_objective_exact_target(self.make_objective(), path, shape)

    def test_objective_target_matches_path(self) -> None:
        for path in self.make_paths():
            for shape in self.shapes:
                check_objective_target(self.make_objective(), path, shape)

    def test_objective_gradients_reach_parameters(self) -> None:
        for path in self.make_paths():
            check_objective_gradients(self.make_objective(), path, self.shapes)
