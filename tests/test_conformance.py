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
from fmcore.core.prediction import Prediction
from fmcore.plugins.loading import get_registry
from fmcore.testing import (
    ObjectiveConformance,
    PathConformance,
    ReferencePath,
    ReferencePathOptions,
    SamplerConformance,
    check_objective_exact_target,
    check_objective_gradients,
    check_objective_target,
    check_path_dtypes,
    check_path_endpoints,
    check_path_score,
    check_path_velocity,
    check_sampler_convergence,
    check_sampler_reproducible,
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
        (RoundedEnd(), check_path_endpoints, "beta_1 = 6.123233995736766e-17 is not 0 but below 1e-06 of the largest |beta_t|"),
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
