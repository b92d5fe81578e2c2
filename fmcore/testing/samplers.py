"""The sampler kit: reproducibility, shapes and finiteness on exact fields (one of them singular at the data
end), the reported NFE against counted network evaluations, the declared needs, and convergence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import torch
from torch import Tensor

from fmcore.core.errors import FmError
from fmcore.core.field import Field
from fmcore.core.noise import BLOCK, BatchNoise
from fmcore.core.ode import dopri5
from fmcore.core.oracle import Oracle
from fmcore.core.path import PathSample, ProbabilityPath
from fmcore.core.prediction import Prediction
from fmcore.core.sampler import Needs, Sampler, SampleResult
from fmcore.testing.common import (
    DEFAULT_SHAPES,
    VECTOR_SHAPE,
    ReferencePath,
    declared,
    exact_field,
    exact_fields,
    mixture_for,
)


@torch.no_grad()
def draw(field: Field, sampler: Sampler, n: int, shape: Sequence[int], seed: int = 0, batch_size: int = BLOCK,
         trajectory: bool = False) -> SampleResult:
    """``n`` samples in batches of ``batch_size`` (a multiple of 64): batch ``[start, start + count)`` starts
    from ``prior_sample(BatchNoise(seed, start, count).randn())`` and gets that noise, the contract under which
    sample ``i`` depends only on ``(seed, i)``. The trajectory, when asked for, is the first batch's."""
    shape = tuple(shape)
    outs, traj, nfe = [], None, 0
    for start in range(0, n, batch_size):
        noise = BatchNoise(seed, start, min(batch_size, n - start), shape, "cpu")
        result = sampler.run(field, field.path.prior_sample(noise.randn()), noise, trajectory=trajectory)
        outs.append(result.x)
        traj = result.trajectory if traj is None else traj
        nfe = result.nfe
    return SampleResult(torch.cat(outs), traj, nfe)


def few_steps(sampler: Sampler, steps: int = 8) -> Sampler:
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
    sampler = few_steps(sampler)
    state = torch.get_rng_state()
    a = draw(field, sampler, n, shape, seed=3, batch_size=64).x
    if not torch.equal(torch.get_rng_state(), state):
        raise AssertionError("sampling advanced the global torch random generator: draw noise only from the "
                             "`noise` argument of step()")
    b = draw(field, sampler, n, shape, seed=3, batch_size=128).x
    if not torch.equal(a, b):
        diff = float((a - b).abs().max())
        raise AssertionError(f"samples depend on the batch size (64 vs 128): max difference {diff:.3g}")
    c = draw(field, sampler, n, shape, seed=4, batch_size=64).x
    if torch.equal(a, c):
        raise AssertionError("seeds 3 and 4 gave identical samples")


def check_sampler_shapes(sampler: Sampler, shapes: Sequence[Sequence[int]] = DEFAULT_SHAPES, n: int = 6) -> None:
    """On every field of :func:`~fmcore.testing.common.exact_fields` (one singular at the data end): samples
    and trajectories have the right shapes and are finite; float64 in, float64 out."""
    sampler = few_steps(sampler)
    for shape in shapes:
        for name, field in exact_fields(shape).items():
            result = draw(field, sampler, n, shape, trajectory=True)
            if tuple(result.x.shape) != (n, *shape):
                raise AssertionError(f"samples have shape {tuple(result.x.shape)}, expected {(n, *shape)}")
            if not torch.isfinite(result.x).all():
                raise AssertionError(
                    f"on the exact field of {name}, the samples are not finite: the sampler evaluates the field "
                    "where it is singular. Evaluate the score (or noise, or data) only inside the times where it "
                    "is finite (fmcore.core.langevin.score_time_range), and end on the data with an ODE step")
            traj = result.trajectory
            steps = sampler.grid(field, "cpu").shape[0] - 1
            if traj is None or tuple(traj.shape) != (steps + 1, n, *shape):
                raise AssertionError(f"trajectory has shape {None if traj is None else tuple(traj.shape)}, "
                                     f"expected {(steps + 1, n, *shape)} ([steps + 1, N, *shape])")
            x0 = field.path.prior_sample(BatchNoise(0, 0, n, tuple(shape), "cpu").randn()).double()
            out = sampler.run(field, x0, BatchNoise(0, 0, n, tuple(shape), "cpu")).x
            if out.dtype != torch.float64:
                raise AssertionError(f"float64 input came back as {out.dtype}")


class CountingNetwork:
    """Wraps a network and counts its calls and the samples it evaluated (``rows``)."""

    def __init__(self, network):
        self.network, self.calls, self.rows = network, 0, 0

    def __call__(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        self.calls += 1
        self.rows += x.shape[0]
        return self.network(x, t, cond)


def check_sampler_nfe(sampler: Sampler, n: int = 6) -> None:
    """On every exact field, ``SampleResult.nfe`` and ``sampler.nfe(steps)`` equal the number of network
    evaluations per sample actually made (counted around the oracle network, one batch)."""
    sampler = few_steps(sampler)
    for name, field in exact_fields().items():
        counter = CountingNetwork(field.network)
        counted = Field(counter, field.path, field.prediction, field.time_range)
        noise = BatchNoise(0, 0, n, VECTOR_SHAPE, "cpu")
        result = sampler.run(counted, field.path.prior_sample(noise.randn()), noise)
        if sampler.adaptive:  # each sample has its own steps: mean and max over samples
            if not (result.nfe_max == counter.calls and abs(result.nfe_mean - counter.rows / n) < 1e-9):
                raise AssertionError(f"on the exact field of {name} the adaptive sampler evaluated the network "
                                     f"{counter.rows / n:g} times per sample on average and {counter.calls} times at "
                                     f"most, but reports nfe_mean = {result.nfe_mean:g} and nfe_max = "
                                     f"{result.nfe_max}")
            continue
        steps = sampler.grid(field, "cpu").shape[0] - 1
        if not result.nfe == sampler.nfe(steps) == counter.calls or counter.rows != n * counter.calls:
            raise AssertionError(f"on the exact field of {name} with {steps} steps the sampler evaluated the network "
                                 f"{counter.calls} times per sample, but reports nfe = {result.nfe} (SampleResult) "
                                 f"and nfe({steps}) = {sampler.nfe(steps)}: declare evals_per_step or override "
                                 "nfe(steps) to match")


def declared_needs(sampler: Sampler) -> Needs:
    """``sampler.needs()`` together with what the components nested in its options declare (a grid or a
    diffusion with ``needs_gaussian_path``), as the recipe check reads them."""
    needs = sampler.needs()
    options = sampler.options
    if attrs.has(type(options)):
        for f in attrs.fields(type(options)):
            inner = getattr(options, f.name)
            if getattr(getattr(inner, "cls", None), "needs_gaussian_path", False):
                needs = needs | Needs(gaussian_path=True)
    return needs


class ScorelessField(Field):
    """A field whose score raises: for a sampler that declares it does not need the score."""

    def predict(self, x: Tensor, t: Tensor | float, kind: Prediction) -> Tensor:
        if kind is Prediction.SCORE:
            raise AssertionError("the sampler evaluated the score although it declares that it does not need it "
                                 "(needs().score is False): set `needs_score = True` or override needs()")
        return super().predict(x, t, kind)

    def velocity_and_score(self, x: Tensor, t: Tensor | float) -> tuple[Tensor, Tensor]:
        return self.velocity(x, t), self.score(x, t)


class OpaquePath(ProbabilityPath):
    """A path that hides that it is Gaussian (no ``alpha_t``, ``beta_t``): :class:`ReferencePath` behind
    the bare :class:`~fmcore.core.path.ProbabilityPath` interface."""

    def __init__(self, inner: ProbabilityPath):
        self.inner = inner

    def prior_sample(self, eps: Tensor) -> Tensor:
        return self.inner.prior_sample(eps)

    def sample(self, z: Tensor, t: Tensor, eps: Tensor) -> PathSample:
        ps = self.inner.sample(z, t, eps)
        return PathSample(ps.x, ps.t, ps.z, ps.eps)

    def conditional_velocity(self, x: Tensor, z: Tensor, t: Tensor) -> Tensor:
        return self.inner.conditional_velocity(x, z, t)


def check_sampler_declared_needs(sampler: Sampler, n: int = 6) -> None:
    """What the sampler declares it does not need, it does not use: without ``needs().score`` it runs on a
    field whose score raises; without a Gaussian path (its own or its grid's) it runs on a non-Gaussian path."""
    sampler = few_steps(sampler)
    needs = declared_needs(sampler)
    path = ReferencePath()
    oracle = Oracle(mixture_for(), path, Prediction.VELOCITY)
    fields = []
    if not needs.score:
        fields.append(("a field whose score raises", ScorelessField(oracle, path)))
    if not needs.gaussian_path:
        fields.append(("a non-Gaussian path", Field(oracle, OpaquePath(path))))
    for name, field in fields:
        try:
            x = draw(field, sampler, n, VECTOR_SHAPE).x
        except (AttributeError, TypeError, ValueError, FmError) as exc:
            raise AssertionError(f"the sampler declares {needs} but fails on {name}: {type(exc).__name__}: {exc}; "
                                 "declare needs_gaussian_path / needs_score (or override needs())") from exc
        if not torch.isfinite(x).all():
            raise AssertionError(f"the sampler declares {needs} but its samples on {name} are not finite")


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
    x = draw(field, sampler, n, (2,), seed=0, batch_size=4096).x.double()
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
    if getattr(sampler, "adaptive", False):
        _check_adaptive_pathwise(sampler, field, tol)
        return
    if not (attrs.has(type(options)) and hasattr(options, "steps")) or not _is_deterministic(sampler, field, 2):
        return
    small = 16
    runs = {steps: draw(field, type(sampler)(attrs.evolve(options, steps=steps)), 256, (2,), seed=1,
                        batch_size=256).x for steps in (small, 2 * small, 8 * small)}
    reference = runs[8 * small].double()
    err1 = float((runs[small].double() - reference).norm(dim=1).mean())
    err2 = float((runs[2 * small].double() - reference).norm(dim=1).mean())
    if not err2 < 0.8 * err1:
        raise AssertionError(f"a deterministic sampler should converge with more steps: mean distance to a "
                             f"{8 * small}-step solution is {err1:.3g} at {small} steps and {err2:.3g} at {2 * small}")


def _check_adaptive_pathwise(sampler: Sampler, field: Field, tol: float) -> None:
    """An adaptive ODE sampler (its error control, not ``steps``, sets the accuracy) lands within ``tol / 10`` on
    average of a tight (1e-9) Dormand–Prince solution of the probability-flow ODE from the same starts."""
    noise = BatchNoise(1, 0, 256, (2,), "cpu", torch.float64)
    x0 = field.path.prior_sample(noise.randn())
    lo, hi = sampler.time_range(field)
    ref = dopri5(lambda ys, t, rows: (field.velocity(ys[0], t),), (x0,), lo, hi, rtol=1e-9, atol=1e-9,
                 max_steps=100_000).y[0]
    err = float((sampler.run(field, x0, noise).x - ref).norm(dim=1).mean())
    if not err <= tol / 10:
        raise AssertionError(f"an adaptive sampler should follow the probability-flow ODE: its samples are {err:.3g} "
                             f"on average from a tight Dormand–Prince solution (tolerance {tol / 10:g})")


def _is_deterministic(sampler: Sampler, field: Field, dim: int) -> bool:
    """Whether the sampler ignores its noise (same start, different noise seeds, same result)."""
    x0 = BatchNoise(0, 0, 8, (dim,), "cpu").randn()
    a = sampler.run(field, x0, BatchNoise(1, 0, 8, (dim,), "cpu")).x
    b = sampler.run(field, x0, BatchNoise(2, 0, 8, (dim,), "cpu")).x
    return torch.equal(a, b)


def check_sampler(sampler: Sampler) -> None:
    """Every sampler check."""
    check_sampler_reproducible(sampler)
    check_sampler_shapes(sampler)
    check_sampler_nfe(sampler)
    check_sampler_declared_needs(sampler)
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

    def test_sampler_shapes_and_finite_on_exact_fields(self) -> None:
        check_sampler_shapes(self.make_sampler(), self.shapes)

    def test_sampler_nfe_is_counted_evaluations(self) -> None:
        check_sampler_nfe(self.make_sampler())

    def test_sampler_uses_only_what_it_declares(self) -> None:
        check_sampler_declared_needs(self.make_sampler())

    def test_sampler_converges_on_exact_field(self) -> None:
        check_sampler_convergence(self.make_sampler(), self.make_field(), tol=self.tol)
