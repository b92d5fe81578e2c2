"""A conformance kit: checks a plugin author runs in their own test suite against their own component.

Subclass one of the base classes in a test module (pytest collects the ``test_*`` methods)::

    from fmcore.testing import PathConformance, SamplerConformance
    from my_plugin.cosine import CosinePath
    from my_plugin.midpoint import Midpoint

    class TestCosinePath(PathConformance):
        path = CosinePath(CosinePath.Options())

    class TestMidpoint(SamplerConformance):
        sampler = Midpoint(Midpoint.Options(steps=50))

or call the ``check_*`` functions directly (each raises ``AssertionError`` saying what is wrong).

What is checked:

* paths: the endpoints (``p_0`` is the prior, ``p_1`` concentrates at the data), the conditional velocity
  against the time derivative of the conditional flow (autograd), the conditional score against the
  gradient of the log-density (autograd), shapes for vector and image data, float32/float64 and devices;
* objectives: zero loss for a network returning the exact target, the target against the path's own
  conditional quantities, gradients reaching every network parameter;
* samplers: reproducibility (samples do not depend on the batch size; the global RNG is untouched),
  shapes and dtypes, and convergence to the data distribution on an exact (oracle) field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import attrs
import torch
from torch import Tensor, nn

from fmcore.core.dataset import Batch
from fmcore.core.field import Field
from fmcore.core.objective import Objective, RegressionObjective
from fmcore.core.options import help_field, in_range
from fmcore.core.oracle import GaussianMixture, oracle_field
from fmcore.core.path import GaussianPath, ProbabilityPath
from fmcore.core.prediction import Prediction
from fmcore.core.sampler import Sampler
from fmcore.run.sampling import generate

VECTOR_SHAPE: tuple[int, ...] = (2,)
IMAGE_SHAPE: tuple[int, ...] = (3, 4, 4)
DEFAULT_SHAPES: tuple[tuple[int, ...], ...] = (VECTOR_SHAPE, IMAGE_SHAPE)


def devices() -> list[torch.device]:
    """The devices to check on: the CPU, plus CUDA where available."""
    out = [torch.device("cpu")]
    if torch.cuda.is_available():
        out.append(torch.device("cuda"))
    return out


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(shape: Sequence[int], seed: int, dtype=torch.float64, device=None) -> Tensor:
    return torch.randn(tuple(shape), generator=_gen(seed), dtype=dtype).to(device)


def _interior_times(n: int, seed: int, margin: float, dtype=torch.float64, device=None) -> Tensor:
    """``n`` times in ``[margin, 1 - margin]``, including both ends of that interval."""
    t = margin + (1 - 2 * margin) * torch.rand(n, generator=_gen(seed), dtype=dtype)
    t[0], t[-1] = margin, 1 - margin
    return t.to(device)


def _close(actual: Tensor, expected: Tensor, what: str, rtol: float, atol: float) -> None:
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}")
    if not torch.isfinite(actual).all():
        raise AssertionError(f"{what}: has non-finite values")
    err = (actual - expected).abs()
    bound = atol + rtol * expected.abs()
    if not (err <= bound).all():
        i = int(torch.argmax((err - bound).flatten()))
        raise AssertionError(f"{what}: differs by {float(err.flatten()[i]):.3g} at flat index {i} "
                             f"(got {float(actual.flatten()[i]):.6g}, expected {float(expected.flatten()[i]):.6g}; "
                             f"rtol {rtol}, atol {atol})")


# -- paths --------------------------------------------------------------------------------------------
def check_path_endpoints(path: ProbabilityPath, data_scale: float = 1.0, prior_tol: float = 0.15,
                         data_tol: float = 0.05, dim: int = 2, n: int = 4096) -> None:
    """``p_0`` is the prior and ``p_1`` concentrates at the data.

    For any path: ``sample(z, t=1)`` is within ``data_tol * data_scale`` (RMS) of ``z``, and
    ``sample(z, t=0, eps)`` is within ``prior_tol`` (relative RMS) of ``prior_sample(eps)`` for data of
    scale ``data_scale``. For a Gaussian path also: ``alpha_1 = 1``, ``beta_1 <= data_tol * data_scale``,
    ``alpha_0 data_scale <= prior_tol beta_0``, ``prior_sample(eps) = beta_0 eps`` (the prior is
    ``N(0, beta_0^2 I)``), and an end that is zero up to rounding is exactly zero (otherwise fmcore cannot
    tell that a score or noise target is singular there).
    """
    z = data_scale * _randn((n, dim), 0)
    eps = _randn((n, dim), 1)
    ones, zeros = torch.ones(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    x1 = path.sample(z, ones, eps).x
    rms1 = float(((x1 - z) ** 2).mean().sqrt())
    if not rms1 <= data_tol * data_scale:
        raise AssertionError(f"p_1 does not concentrate at the data: RMS |x_1 - z| = {rms1:.3g} > "
                             f"data_tol * data_scale = {data_tol * data_scale:.3g}")
    prior = path.prior_sample(eps)
    if prior.shape != eps.shape:
        raise AssertionError(f"prior_sample changed the shape {tuple(eps.shape)} to {tuple(prior.shape)}")
    x0 = path.sample(z, zeros, eps).x
    rel0 = float(((x0 - prior) ** 2).mean().sqrt() / (prior**2).mean().sqrt())
    if not rel0 <= prior_tol:
        raise AssertionError(f"p_0 is not the prior: sample(z, t=0, eps) differs from prior_sample(eps) by "
                             f"{rel0:.3g} (relative RMS) > prior_tol = {prior_tol} for data of scale {data_scale}")
    if not isinstance(path, GaussianPath):
        return
    start, end = path.endpoint(0.0), path.endpoint(1.0)
    a0, b0, a1, b1 = (float(v) for v in (start.alpha, start.beta, end.alpha, end.beta))
    if abs(a1 - 1.0) > 1e-6:
        raise AssertionError(f"alpha_1 = {a1!r}, expected 1 (the path must end at the data)")
    if not 0.0 <= b1 <= data_tol * data_scale:
        raise AssertionError(f"beta_1 = {b1!r}, expected a small non-negative number (<= {data_tol * data_scale})")
    if not b0 > 0:
        raise AssertionError(f"beta_0 = {b0!r}, expected > 0 (the prior needs noise)")
    if not abs(a0) * data_scale <= prior_tol * b0:
        raise AssertionError(f"alpha_0 = {a0!r} is not small against beta_0 = {b0!r}: the data leaks into p_0")
    for name, value in (("alpha_0", a0), ("beta_1", b1)):
        if value != 0.0 and abs(value) < 1e-12:
            raise AssertionError(f"{name} = {value!r} is zero only up to rounding: write the formula so that it "
                                 "is exactly 0 there (e.g. sin(pi (1 - t) / 2) instead of cos(pi t / 2)), "
                                 "otherwise singular score and noise targets at that end go undetected")
    _close(prior, b0 * eps, "prior_sample(eps) against beta_0 * eps (prior N(0, beta_0^2 I))", 1e-5, 1e-8)


def _flow(path: ProbabilityPath, z: Tensor, eps: Tensor) -> Callable[[Tensor], Tensor]:
    return lambda t: path.sample(z, t, eps).x


def check_path_velocity(path: ProbabilityPath, shape: Sequence[int] = VECTOR_SHAPE, n: int = 64,
                        margin: float = 0.02, rtol: float = 1e-6, atol: float = 1e-6) -> None:
    """``conditional_velocity(x_t, z, t)`` equals ``d/dt`` of the flow ``t -> sample(z, t, eps).x`` (autograd,
    float64), at times in ``[margin, 1 - margin]``; for a Gaussian path also ``d_alpha``, ``d_beta``."""
    z, eps = _randn((n, *shape), 2), _randn((n, *shape), 3)
    t = _interior_times(n, 4, margin)
    x, dxdt = torch.autograd.functional.jvp(_flow(path, z, eps), t, torch.ones_like(t))
    _close(path.conditional_velocity(x, z, t), dxdt, "conditional_velocity against d/dt of the flow", rtol, atol)
    if isinstance(path, GaussianPath):
        (alpha, beta), (d_alpha, d_beta) = torch.autograd.functional.jvp(
            lambda tt: path.coefficients(tt)[:2], t, torch.ones_like(t))
        coeffs = path.coefficients(t)
        _close(coeffs[2], d_alpha, "d_alpha against d alpha_t / dt", rtol, atol)
        _close(coeffs[3], d_beta, "d_beta against d beta_t / dt", rtol, atol)
        s = path.schedule(t, z)
        _close(x, s.alpha * z + s.beta * eps, "sample(z, t, eps).x against alpha_t z + beta_t eps", rtol, atol)


def gaussian_log_prob(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """``log N(x; mean, std^2 I)`` summed over the non-batch dimensions (``std`` broadcasts against x)."""
    dim = x[0].numel()
    sq = (((x - mean) / std) ** 2).flatten(1).sum(1)
    return -0.5 * sq - dim * torch.log(std.flatten(1)[:, 0]) - 0.5 * dim * math.log(2 * math.pi)


def check_path_score(path: ProbabilityPath, shape: Sequence[int] = VECTOR_SHAPE, n: int = 64,
                     margin: float = 0.02, rtol: float = 1e-6, atol: float = 1e-6) -> None:
    """``conditional_score(x, z, t)`` equals ``grad_x log p_t(x | z)`` (autograd, float64).

    For a Gaussian path the density is ``N(alpha_t z, beta_t^2 I)`` written here independently, and the
    path's ``conditional_log_prob`` must equal it; another path is checked against its own
    ``conditional_log_prob`` when it has both methods (and skipped otherwise).
    """
    if not hasattr(path, "conditional_score"):
        return
    z, eps = _randn((n, *shape), 5), _randn((n, *shape), 6)
    t = _interior_times(n, 7, margin)
    x = path.sample(z, t, eps).x.detach().requires_grad_(True)
    if isinstance(path, GaussianPath):
        s = path.schedule(t, z)
        log_p = gaussian_log_prob(x, s.alpha * z, s.beta)
        _close(path.conditional_log_prob(x, z, t).detach(), log_p.detach(),
               "conditional_log_prob against log N(x; alpha_t z, beta_t^2 I)", rtol, atol)
    elif hasattr(path, "conditional_log_prob"):
        log_p = path.conditional_log_prob(x, z, t)
    else:
        return
    (grad,) = torch.autograd.grad(log_p.sum(), x)
    _close(path.conditional_score(x.detach(), z, t), grad, "conditional_score against grad_x log p_t(x|z)",
           rtol, atol)


def check_path_shapes(path: ProbabilityPath, shapes: Sequence[Sequence[int]] = DEFAULT_SHAPES, n: int = 5) -> None:
    """Every method returns data shaped like its input, for vector and image-shaped data."""
    for shape in shapes:
        z, eps = _randn((n, *shape), 8, torch.float32), _randn((n, *shape), 9, torch.float32)
        t = torch.rand(n, generator=_gen(10))
        ps = path.sample(z, t, eps)
        want = (n, *shape)
        got = {"sample(...).x": ps.x, "prior_sample(eps)": path.prior_sample(eps),
               "conditional_velocity": path.conditional_velocity(ps.x, z, t)}
        if hasattr(path, "conditional_score"):
            got["conditional_score"] = path.conditional_score(ps.x, z, t.clamp(0.05, 0.95))
        for what, value in got.items():
            if tuple(value.shape) != want:
                raise AssertionError(f"{what} has shape {tuple(value.shape)} for data of shape {want}")
        if tuple(ps.t.shape) != (n,):
            raise AssertionError(f"sample(...).t has shape {tuple(ps.t.shape)}, expected ({n},)")


def check_path_dtypes(path: ProbabilityPath, shape: Sequence[int] = VECTOR_SHAPE, n: int = 5) -> None:
    """float32 and float64 data stay in their dtype and on their device through every method."""
    for device in devices():
        for dtype in (torch.float32, torch.float64):
            z, eps = _randn((n, *shape), 11, dtype, device), _randn((n, *shape), 12, dtype, device)
            t = _interior_times(n, 13, 0.05, dtype, device)
            ps = path.sample(z, t, eps)
            got = {"sample(...).x": ps.x, "prior_sample(eps)": path.prior_sample(eps),
                   "conditional_velocity": path.conditional_velocity(ps.x, z, t)}
            if hasattr(path, "conditional_score"):
                got["conditional_score"] = path.conditional_score(ps.x, z, t)
            for what, value in got.items():
                if value.dtype != dtype or value.device.type != device.type:
                    raise AssertionError(f"{what} returned {value.dtype} on {value.device} for {dtype} data on "
                                         f"{device}")
                if not torch.isfinite(value).all():
                    raise AssertionError(f"{what} is not finite in {dtype} at t in [0.05, 0.95]")


def check_path(path: ProbabilityPath, data_scale: float = 1.0, prior_tol: float = 0.15,
               data_tol: float = 0.05) -> None:
    """Every path check."""
    check_path_endpoints(path, data_scale, prior_tol, data_tol)
    for shape in DEFAULT_SHAPES:
        check_path_velocity(path, shape)
        check_path_score(path, shape)
    check_path_shapes(path)
    check_path_dtypes(path)


def declared(kit: object, name: str):
    """The component a conformance subclass set as the class attribute ``name`` (error if it set none)."""
    value = getattr(kit, name)
    if value is None:
        raise TypeError(f"{type(kit).__name__} must set `{name} = ...` or override make_{name}()")
    return value


class PathConformance:
    """Subclass with ``path = MyPath(MyPath.Options(...))`` (or override :meth:`make_path`).

    ``data_scale``: typical size of a data point; ``prior_tol``: how far ``p_0`` may be from the prior for
    such data (relative); ``data_tol``: how far ``p_1`` may be from the data (in units of ``data_scale``).
    """

    path: ClassVar[ProbabilityPath | None] = None
    data_scale: ClassVar[float] = 1.0
    prior_tol: ClassVar[float] = 0.15
    data_tol: ClassVar[float] = 0.05
    shapes: ClassVar[tuple[tuple[int, ...], ...]] = DEFAULT_SHAPES

    def make_path(self) -> ProbabilityPath:
        return declared(self, "path")

    def test_path_endpoints(self) -> None:
        check_path_endpoints(self.make_path(), self.data_scale, self.prior_tol, self.data_tol)

    def test_path_velocity_is_flow_derivative(self) -> None:
        for shape in self.shapes:
            check_path_velocity(self.make_path(), shape)

    def test_path_score_is_log_density_gradient(self) -> None:
        for shape in self.shapes:
            check_path_score(self.make_path(), shape)

    def test_path_shapes(self) -> None:
        check_path_shapes(self.make_path(), self.shapes)

    def test_path_dtypes_and_devices(self) -> None:
        check_path_dtypes(self.make_path())


# -- a reference path and an exact field, for objectives and samplers ---------------------------------
@attrs.define(kw_only=True)
class ReferencePathOptions:
    sigma_min: float = help_field(0.01, "noise std left at t = 1", validator=in_range(0.0, 1.0, hi_open=True))


class ReferencePath(GaussianPath):
    """The linear path alpha_t = t, beta_t = 1 - (1 - sigma_min) t, in the kit so it needs no plugin."""

    Options = ReferencePathOptions

    def __init__(self, options: ReferencePathOptions | None = None):
        self.options = options or ReferencePathOptions()

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        k = 1.0 - self.options.sigma_min
        return t, 1.0 - k * t, torch.ones_like(t), torch.full_like(t, -k)


# -- objectives ---------------------------------------------------------------------------------------
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
    z0 = _randn((1, *shape), seed + 20)
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
    z, eps = _randn((n, *shape), 30), _randn((n, *shape), 31)
    lo, hi = objective.time_range(path)
    t = lo + (hi - lo) * _interior_times(n, 32, 0.02)
    ps = path.sample(z, t, eps)
    _close(objective.target(ps, path), exact_target(path, objective.prediction, ps.x, z, t),
           f"{type(objective).__name__}.target against the exact {objective.prediction.value}", rtol, atol)


def check_objective_gradients(objective: Objective, path: ProbabilityPath,
                              shapes: Sequence[Sequence[int]] = DEFAULT_SHAPES, n: int = 32) -> None:
    """The loss is a finite scalar for vector and image data, and its gradient reaches every parameter."""
    _objective_problems(objective, path)
    for shape in shapes:
        net = TinyNetwork(shape)
        batch = Batch(_randn((n, *shape), 40, torch.float32))
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


# -- samplers -----------------------------------------------------------------------------------------
#: The data of the sampler checks: two Gaussian blobs of unequal weight in 2D.
MIXTURE_MEANS = ((-1.5, 0.0), (1.5, 0.5))
MIXTURE_STD = 0.4
MIXTURE_WEIGHTS = (0.3, 0.7)


def mixture_for(shape: Sequence[int] = VECTOR_SHAPE) -> GaussianMixture:
    """The sampler checks' data: for 2D, two blobs (``MIXTURE_*``); for another shape, two blobs at -1 and +1."""
    if tuple(shape) == (2,):
        means = torch.tensor(MIXTURE_MEANS, dtype=torch.float64)
    else:
        means = torch.stack([-torch.ones(shape, dtype=torch.float64), torch.ones(shape, dtype=torch.float64)])
    return GaussianMixture.isotropic(means, MIXTURE_STD, torch.tensor(MIXTURE_WEIGHTS, dtype=torch.float64))


def exact_field(shape: Sequence[int] = VECTOR_SHAPE, path: GaussianPath | None = None) -> Field:
    """The exact velocity field (:mod:`fmcore.core.oracle`) of :func:`mixture_for` on ``path`` (default:
    :class:`ReferencePath`)."""
    return oracle_field(mixture_for(shape), path or ReferencePath(), Prediction.VELOCITY)


def _few_steps(sampler: Sampler, steps: int = 8) -> Sampler:
    """A copy of ``sampler`` with at most ``steps`` steps (for checks that do not depend on the step count)."""
    options = sampler.options
    if attrs.has(type(options)) and isinstance(getattr(options, "steps", None), int) and options.steps > steps:
        return type(sampler)(attrs.evolve(options, steps=steps))
    return sampler


def check_sampler_reproducible(sampler: Sampler, field: Field | None = None, n: int = 100,
                               shape: Sequence[int] = VECTOR_SHAPE) -> None:
    """With a seed, samples are identical whatever the batch size (64 or 128), differ for another seed,
    and the global random generator is not advanced (all randomness comes from the sampler's noise)."""
    field = field or exact_field(shape)
    sampler = _few_steps(sampler)
    state = torch.get_rng_state()
    a = generate(field, sampler, n, tuple(shape), seed=3, batch_size=64).x
    if not torch.equal(torch.get_rng_state(), state):
        raise AssertionError("sampling advanced the global torch random generator: draw noise only from the "
                             "`noise` argument of step()")
    b = generate(field, sampler, n, tuple(shape), seed=3, batch_size=128).x
    if not torch.equal(a, b):
        diff = float((a - b).abs().max())
        raise AssertionError(f"samples depend on the batch size (64 vs 128): max difference {diff:.3g}")
    c = generate(field, sampler, n, tuple(shape), seed=4, batch_size=64).x
    if torch.equal(a, c):
        raise AssertionError("seeds 3 and 4 gave identical samples")


def check_sampler_shapes(sampler: Sampler, shapes: Sequence[Sequence[int]] = DEFAULT_SHAPES, n: int = 6) -> None:
    """Samples and trajectories have the right shapes and are finite; NFE is positive; float64 in, float64 out."""
    from fmcore.core.noise import BatchNoise

    sampler = _few_steps(sampler)
    for shape in shapes:
        field = exact_field(shape)
        result = generate(field, sampler, n, tuple(shape), seed=0, trajectory=2)
        if tuple(result.x.shape) != (n, *shape) or not torch.isfinite(result.x).all():
            raise AssertionError(f"samples have shape {tuple(result.x.shape)} (expected {(n, *shape)}) "
                                 "or are not finite")
        traj = result.trajectory
        if traj is None or traj.ndim != len(shape) + 2 or tuple(traj.shape[1:]) != (2, *shape):
            raise AssertionError(f"trajectory has shape {None if traj is None else tuple(traj.shape)}, expected "
                                 f"[steps + 1, 2, {', '.join(map(str, shape))}]")
        if not result.nfe > 0:
            raise AssertionError(f"nfe = {result.nfe}, expected > 0")
        x0 = field.path.prior_sample(BatchNoise(0, 0, n, tuple(shape), "cpu").randn()).double()
        out = sampler.run(field, x0, BatchNoise(0, 0, n, tuple(shape), "cpu")).x
        if out.dtype != torch.float64:
            raise AssertionError(f"float64 input came back as {out.dtype}")


def check_sampler_convergence(sampler: Sampler, field: Field | None = None, n: int = 2000, tol: float = 0.1) -> None:
    """On the exact field of :func:`mixture_for` (two blobs, std 0.4, weights 0.3 / 0.7), the samples have
    the mixture's mean and standard deviation per coordinate (within ``tol``) and put the right share of
    points in each blob (within ``tol / 2``). A deterministic sampler must also converge pathwise: doubling
    its steps from 16 brings the samples closer to those of a 128-step solution.

    ``field`` replaces the default exact field (it must be the exact field of :func:`mixture_for` on some
    Gaussian path, e.g. ``exact_field(path=my_path)``).
    """
    mixture = mixture_for()
    field = field or exact_field()
    x = generate(field, sampler, n, (2,), seed=0).x.double()
    w, m, s2 = mixture.weights, mixture.means, mixture.stds**2
    mean = (w[:, None] * m).sum(0)
    std = ((w[:, None] * (m**2 + s2[:, None])).sum(0) - mean**2).sqrt()
    mean_err = float((x.mean(0) - mean).abs().max())
    std_err = float((x.std(0) - std).abs().max())
    share_err = abs(float((x[:, 0] > 0).double().mean()) - float(w[1]))
    if not (mean_err <= tol and std_err <= tol and share_err <= tol / 2):
        raise AssertionError(f"on an exact two-blob field the samples' mean is off by {mean_err:.3g}, their std by "
                             f"{std_err:.3g} (tolerance {tol}) and the share of the heavier blob by {share_err:.3g} "
                             f"(tolerance {tol / 2}); try more steps in the test")
    options = sampler.options
    if not (attrs.has(type(options)) and hasattr(options, "steps")) or not _is_deterministic(sampler, field, 2):
        return
    small = 16
    runs = {steps: generate(field, type(sampler)(attrs.evolve(options, steps=steps)), 256, (2,), seed=1).x
            for steps in (small, 2 * small, 8 * small)}
    reference = runs[8 * small].double()
    err1 = float((runs[small].double() - reference).norm(dim=1).mean())
    err2 = float((runs[2 * small].double() - reference).norm(dim=1).mean())
    if not err2 < 0.8 * err1:
        raise AssertionError(f"a deterministic sampler should converge with more steps: mean distance to a "
                             f"{8 * small}-step solution is {err1:.3g} at {small} steps and {err2:.3g} at {2 * small}")


def _is_deterministic(sampler: Sampler, field: Field, dim: int) -> bool:
    """Whether the sampler ignores its noise (same start, different noise seeds, same result)."""
    from fmcore.core.noise import BatchNoise

    x0 = BatchNoise(0, 0, 8, (dim,), "cpu").randn()
    a = sampler.run(field, x0, BatchNoise(1, 0, 8, (dim,), "cpu")).x
    b = sampler.run(field, x0, BatchNoise(2, 0, 8, (dim,), "cpu")).x
    return torch.equal(a, b)


def check_sampler(sampler: Sampler) -> None:
    """Every sampler check."""
    check_sampler_reproducible(sampler)
    check_sampler_shapes(sampler)
    check_sampler_convergence(sampler)


class SamplerConformance:
    """Subclass with ``sampler = MySampler(MySampler.Options(...))``; ``tol`` is the convergence tolerance
    in units of the data's standard deviation."""

    sampler: ClassVar[Sampler | None] = None
    tol: ClassVar[float] = 0.1
    shapes: ClassVar[tuple[tuple[int, ...], ...]] = DEFAULT_SHAPES

    def make_sampler(self) -> Sampler:
        return declared(self, "sampler")

    def make_field(self) -> Field | None:
        """The field for the convergence check (None: ``exact_field()``, two blobs on ReferencePath)."""
        return None

    def test_sampler_reproducible(self) -> None:
        check_sampler_reproducible(self.make_sampler())

    def test_sampler_shapes(self) -> None:
        check_sampler_shapes(self.make_sampler(), self.shapes)

    def test_sampler_converges_on_exact_field(self) -> None:
        check_sampler_convergence(self.make_sampler(), self.make_field(), tol=self.tol)


# -- installing a plugin without pip (for tests) ------------------------------------------------------
def fake_install(site: Path, distribution: str, entry_points: dict[str, str], files: dict[str, str] | None = None,
                 version: str = "0.1") -> Path:
    """Write ``files`` (relative path -> text) and a ``<distribution>-<version>.dist-info`` with the given
    ``fmcore`` entry points into ``site``. Put ``site`` on ``sys.path`` (or ``PYTHONPATH``) and
    ``importlib.metadata`` sees an installed distribution, as if ``pip install`` had run."""
    site = Path(site)
    for rel, text in (files or {}).items():
        target = site / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n",
                                   encoding="utf-8")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[fmcore]\n{lines}", encoding="utf-8")
    return info


__all__ = [
    "DEFAULT_SHAPES", "ExactTargetNetwork", "ObjectiveConformance", "PathConformance",
    "ReferencePath", "SamplerConformance", "TinyNetwork", "check_objective", "check_objective_exact_target",
    "check_objective_gradients", "check_objective_target", "check_path", "check_path_dtypes", "check_path_endpoints",
    "check_path_score", "check_path_shapes", "check_path_velocity", "check_sampler", "check_sampler_convergence",
    "check_sampler_reproducible", "check_sampler_shapes", "devices", "exact_target", "fake_install",
    "exact_field", "gaussian_log_prob", "mixture_for",
]

