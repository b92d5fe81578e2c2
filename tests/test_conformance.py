"""The conformance kit (fmcore.testing) on every installed component, and on broken ones it must reject.

The test classes are made from the registry, so a newly installed path, objective or sampler is checked
without editing this file.
"""

from __future__ import annotations

import math

import attrs
import pytest
import torch

from fmcore import Sampler, SamplerOptions
from fmcore.core.objective import Objective, RegressionObjective
from fmcore.core.options import OptionValueError, help_field, in_range, non_negative, one_of, positive
from fmcore.core.prediction import Prediction
from fmcore.plugins.loading import get_registry
from fmcore.testing import (
    ObjectiveConformance,
    PathConformance,
    ReferencePath,
    ReferencePathOptions,
    SamplerConformance,
    candidates,
    check_objective_exact_target,
    check_objective_gradients,
    check_objective_target,
    check_path_dtypes,
    check_path_endpoints,
    check_path_options,
    check_path_score,
    check_path_snr,
    check_path_velocity,
    check_sampler_convergence,
    check_sampler_declared_needs,
    check_sampler_nfe,
    check_sampler_reproducible,
    check_sampler_shapes,
    option_variants,
    path_variants,
)

REGISTRY = get_registry()

#: Sampler options for the conformance run where the defaults are needlessly slow for a test.
SAMPLER_OPTIONS: dict[str, dict] = {}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: one thread is faster than several competing for a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _component(kind: str, name: str, **options):
    cls = REGISTRY.get(kind, name).cls
    return cls(attrs.evolve(cls.Options(), **options) if options else cls.Options())


def _objective_paths(objective: Objective) -> list:
    """Every installed path the objective can train on with its defaults, or with t_eps = 1e-3."""
    paths = [ReferencePath()]
    for name in REGISTRY.names("path"):
        path = _component("path", name)
        if objective.problems(path) and hasattr(objective.options, "t_eps"):
            objective = type(objective)(attrs.evolve(objective.options, t_eps=1e-3))
        if not objective.problems(path):
            paths.append(path)
    return paths


def _objective_class(name: str) -> type:
    objective = _component("objective", name)
    fixed = type(objective)(attrs.evolve(objective.options, t_eps=max(objective.options.t_eps, 1e-3)))
    return type(f"TestObjective_{name}", (ObjectiveConformance,),
                {"objective": fixed, "paths": tuple(_objective_paths(fixed))})


for _name in REGISTRY.names("path"):
    globals()[f"TestPath_{_name}"] = type(f"TestPath_{_name}", (PathConformance,), {"path": _component("path", _name)})
for _name in REGISTRY.names("objective"):
    globals()[f"TestObjective_{_name}"] = _objective_class(_name)
for _name in REGISTRY.names("sampler"):
    globals()[f"TestSampler_{_name}"] = type(
        f"TestSampler_{_name}", (SamplerConformance,),
        {"sampler": _component("sampler", _name, **SAMPLER_OPTIONS.get(_name, {}))})


class TestReferencePath(PathConformance):
    path = ReferencePath(ReferencePathOptions(sigma_min=0.0))


def test_every_builtin_component_is_checked():
    """The classes above cover the built-in names of the issue (and whatever else is installed)."""
    names = {n for n in globals() if n.startswith("Test")}
    for kind, builtin in (("Path", ("condot", "vp", "ve")), ("Objective", ("cfm", "dsm", "ddpm")),
                          ("Sampler", ("euler",))):
        for name in builtin:
            assert f"Test{kind}_{name}" in names
    for name in REGISTRY.names("sampler"):
        assert f"TestSampler_{name}" in names


def test_objectives_are_checked_on_every_installed_path():
    for name in REGISTRY.names("objective"):
        paths = globals()[f"TestObjective_{name}"].paths
        assert len(paths) == 1 + len(REGISTRY.names("path")), (name, paths)


# -- the kit must fail on wrong components --------------------------------------------------------------
class WrongDerivative(ReferencePath):
    """d_alpha off by 10 %."""

    def coefficients(self, t):
        alpha, beta, d_alpha, d_beta = super().coefficients(t)
        return alpha, beta, 1.1 * d_alpha, d_beta


class WrongScore(ReferencePath):
    def conditional_score(self, x, z, t):
        return -super().conditional_score(x, z, t)


class WrongPrior(ReferencePath):
    @property
    def prior_std(self):
        return 2.0


class RoundedEnd(ReferencePath):
    """beta_t = cos(pi t / 2): beta_1 = 6e-17, zero only up to rounding."""

    def coefficients(self, t):
        h = math.pi / 2
        return torch.sin(h * t), torch.cos(h * t), h * torch.cos(h * t), -h * torch.sin(h * t)


class LeakyPrior(ReferencePath):
    """alpha_0 = 0.5: the data leaks into p_0."""

    def coefficients(self, t):
        return 0.5 + 0.5 * t, 1 - t, torch.full_like(t, 0.5), -torch.ones_like(t)


class Float32Only(ReferencePath):
    def prior_sample(self, eps):
        return super().prior_sample(eps).float()


@pytest.mark.parametrize(
    ("path", "check", "message"),
    [
        (WrongDerivative(), check_path_velocity, "conditional_velocity against d/dt of the flow"),
        (WrongScore(), check_path_score, "conditional_score against grad_x log p_t(x|z)"),
        (WrongPrior(), check_path_endpoints, "p_0 is not the prior"),
        (RoundedEnd(), check_path_endpoints, "beta_1 = 6.123233995736766e-17 is not 0 but below 1e-06 of the"),
        (LeakyPrior(), check_path_endpoints, "p_0 is not the prior"),
        (Float32Only(), check_path_dtypes, "returned torch.float32 on cpu for torch.float64 data"),
    ],
)
def test_path_checks_reject_wrong_paths(path, check, message):
    with pytest.raises(AssertionError, match=message.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        check(path)


class SignFlippedTarget(RegressionObjective):
    """A velocity objective whose target has the wrong sign."""

    prediction = Prediction.VELOCITY

    def target(self, ps, path, allowed=None):
        return -super().target(ps, path, allowed)


class DetachedLoss(RegressionObjective):
    """A loss that does not reach the network's parameters."""

    prediction = Prediction.VELOCITY

    def loss(self, network, path, batch, null_label=0):
        return super().loss(network, path, batch, null_label).detach().requires_grad_(True)


def test_objective_checks_reject_wrong_objectives():
    path = ReferencePath()
    wrong = SignFlippedTarget(SignFlippedTarget.Options())
    with pytest.raises(AssertionError, match="the loss at the exact velocity target is"):
        check_objective_exact_target(wrong, path)
    with pytest.raises(AssertionError, match="SignFlippedTarget.target against the exact velocity"):
        check_objective_target(wrong, path)
    detached = DetachedLoss(DetachedLoss.Options())
    check_objective_exact_target(detached, path)
    with pytest.raises(AssertionError, match="no finite, non-zero gradient reaches parameter 'linear.weight'"):
        check_objective_gradients(detached, path)


class GlobalNoise(Sampler):
    """Euler plus noise from the global generator: not reproducible across batch sizes."""

    Options = SamplerOptions

    def step(self, field, x, t, t_next, noise):
        return x + (t_next - t) * field.velocity(x, t) + 1e-3 * torch.randn_like(x)


class HalfStep(Sampler):
    """Euler that moves only half of each step: it does not reach the data."""

    Options = SamplerOptions

    def step(self, field, x, t, t_next, noise):
        return x + 0.5 * (t_next - t) * field.velocity(x, t)


def test_sampler_checks_reject_wrong_samplers():
    with pytest.raises(AssertionError, match="advanced the global torch random generator"):
        check_sampler_reproducible(GlobalNoise(SamplerOptions(steps=10)))
    with pytest.raises(AssertionError, match="on an exact two-blob field the samples' mean is off by"):
        check_sampler_convergence(HalfStep(SamplerOptions(steps=20)))


# -- gaps closed: what the kit once let through ----------------------------------------------------------
class ScoreAtDataEnd(Sampler):
    """A stochastic sampler (an Euler step, then a Langevin nudge at t_next) that evaluates the score at the
    data end: finite where beta_1 > 0, infinite on CondOT with sigma_min = 0."""

    Options = SamplerOptions
    needs_score = True
    evals_per_step = 2

    def step(self, field, x, t, t_next, noise):
        x = x + (t_next - t) * field.velocity(x, t)
        a = 0.01 * (t_next - t)
        return x + 0.5 * a * field.score(x, t_next) + a.sqrt() * noise.randn().to(x.dtype)


def test_sampler_kit_catches_the_score_at_a_singular_data_end():
    sampler = ScoreAtDataEnd(SamplerOptions(steps=8))
    check_sampler_reproducible(sampler)  # on the regular reference path alone (the old kit) all is well
    with pytest.raises(AssertionError, match=r"on the exact field of two blobs on CondOT with sigma_min = 0 .*"
                                             r"the samples are not finite"):
        check_sampler_shapes(sampler)


class UndercountedHeun(Sampler):
    """Heun's two evaluations per step, reported as one."""

    Options = SamplerOptions

    def step(self, field, x, t, t_next, noise):
        v = field.velocity(x, t)
        return x + 0.5 * (t_next - t) * (v + field.velocity(x + (t_next - t) * v, t_next))


def test_sampler_kit_counts_network_evaluations():
    with pytest.raises(AssertionError, match=r"with 8 steps the sampler evaluated the network 16 times per sample, "
                                             r"but reports nfe = 8 \(SampleResult\) and nfe\(8\) = 8"):
        check_sampler_nfe(UndercountedHeun(SamplerOptions(steps=8)))
    counted = type("CountedHeun", (UndercountedHeun,), {"evals_per_step": 2})
    check_sampler_nfe(counted(SamplerOptions(steps=8)))


class UndeclaredScore(Sampler):
    """Euler plus a Langevin nudge: uses the score but declares nothing."""

    Options = SamplerOptions

    def step(self, field, x, t, t_next, noise):
        x = x + (t_next - t) * field.velocity(x, t)
        return x + 1e-4 * field.score(x, t.clamp(max=0.9))


class UndeclaredSchedule(Sampler):
    """Euler scaled by alpha_t: reads the Gaussian schedule but declares nothing."""

    Options = SamplerOptions

    def step(self, field, x, t, t_next, noise):
        s = field.path.schedule(t, x)
        return x + (t_next - t) * field.velocity(x, t) * (1 + 0 * s.alpha)


def test_sampler_kit_checks_declared_needs():
    with pytest.raises(AssertionError, match="evaluated the score although it declares that it does not need it"):
        check_sampler_declared_needs(UndeclaredScore(SamplerOptions(steps=8)))
    with pytest.raises(AssertionError, match="fails on a non-Gaussian path: AttributeError"):
        check_sampler_declared_needs(UndeclaredSchedule(SamplerOptions(steps=8)))
    check_sampler_declared_needs(type("Declared", (UndeclaredScore,), {"needs_score": True})(SamplerOptions()))
    check_sampler_declared_needs(type("Declared", (UndeclaredSchedule,), {"needs_gaussian_path": True})(
        SamplerOptions()))


def test_builtin_samplers_pass_on_the_singular_field_with_exact_nfe():
    """euler, heun, euler_maruyama, langevin, pc: finite on CondOT sigma_min = 0, NFE = counted evaluations
    (heun also with euler_last, where nfe = 2 steps - 1)."""
    for name in ("euler", "heun", "euler_maruyama", "langevin", "pc"):
        sampler = _component("sampler", name, steps=8)
        check_sampler_shapes(sampler, shapes=[(2,)])
        check_sampler_nfe(sampler)
    check_sampler_nfe(_component("sampler", "heun", steps=8, euler_last=True))


def test_path_kit_rejects_a_numerically_singular_end():
    with pytest.raises(AssertionError, match=r"beta_1 = 9.9+\d*e-10 is not 0 but below 1e-06 .* Make beta_1 exactly 0"):
        check_path_endpoints(ReferencePath(ReferencePathOptions(sigma_min=1e-9)))
    check_path_endpoints(ReferencePath(ReferencePathOptions(sigma_min=1e-4)))


class Wiggly(ReferencePath):
    """alpha_t = t + 0.4 sin(2 pi t), beta_t = 1 - t: right ends and derivatives, but alpha_t / beta_t falls
    around t = 1/2."""

    def coefficients(self, t):
        w = 2 * math.pi
        return t + 0.4 * torch.sin(w * t), 1 - t, 1 + 0.4 * w * torch.cos(w * t), -torch.ones_like(t)


def test_path_kit_rejects_a_non_monotone_snr():
    path = Wiggly(ReferencePathOptions(sigma_min=0.0))
    check_path_endpoints(path)
    check_path_velocity(path)
    check_path_score(path)
    with pytest.raises(AssertionError, match=r"D = beta d_alpha - alpha d_beta = -.* expected > 0"):
        check_path_snr(path)


@attrs.define(kw_only=True)
class PowerOptions:
    power: float = help_field(2.0, "alpha_t = t^power", validator=in_range(1.0, 3.0))


class PowerPath(ReferencePath):
    """alpha_t = t^p, beta_t = 1 - t, with d_alpha written as p t (right only at the default p = 2)."""

    Options = PowerOptions

    def __init__(self, options):
        self.options = options

    def coefficients(self, t):
        p = self.options.power
        return t**p, 1 - t, p * t, -torch.ones_like(t)


def test_path_kit_checks_other_option_values():
    path = PowerPath(PowerOptions())
    check_path_velocity(path)  # the author's instance passes
    assert [v.options.power for v in path_variants(path)] == [2.0, 1.2, 2.8, 1.0, 3.0]
    with pytest.raises(AssertionError, match=r"with PowerOptions\(power=1.2\): conditional_velocity against d/dt"):
        check_path_options(path)


@attrs.define(kw_only=True)
class SweepOptions:
    rate: float = help_field(0.5, "", validator=in_range(0.0, 1.0, lo_open=True))
    scale: float = help_field(4.0, "", validator=positive)
    count: int = help_field(2, "", validator=non_negative)
    mode: str = help_field("a", "", validator=one_of(("a", "b")))
    flag: bool = help_field(False, "")
    free: str = help_field("x", "")

    def __attrs_post_init__(self):
        if self.scale * self.rate > 3.0:
            raise OptionValueError("scale", self.scale, "scale * rate <= 3")


def test_option_variants_are_drawn_from_validators():
    fields = {f.name: f for f in attrs.fields(SweepOptions)}
    assert candidates(fields["rate"], 0.5) == [0.1, 0.9, 1.0]  # (0, 1]: inside, closed end, open end left out
    assert candidates(fields["scale"], 4.0) == [2.0, 8.0]
    assert candidates(fields["count"], 2) == [0, 1, 4]
    assert candidates(fields["mode"], "a") == ["b"]
    assert candidates(fields["flag"], False) == [True]
    assert candidates(fields["free"], "x") == []
    variants = option_variants(SweepOptions())
    assert variants[0] == SweepOptions() and len(variants) == len({repr(v) for v in variants}) > 8
    assert all(v.scale * v.rate <= 3.0 for v in variants)  # cross-field refusals skipped
    pairs = {(v.rate, v.scale) for v in variants}
    assert (0.1, 4.0) in pairs and (0.5, 8.0) not in pairs and (1.0, 4.0) not in pairs
