"""fmcore-cosine's own tests: fmcore's conformance kit on its components, plus what is specific to them.

Run after installing the package: ``pip install ./examples/plugin-cosine && pytest examples/plugin-cosine/tests``.
"""

from __future__ import annotations

import math
from pathlib import Path

import attrs
import pytest
import torch
from fmcore_cosine import CosineOptions, CosinePath, Midpoint

from fmcore.cli import main
from fmcore.plugins.loading import get_registry
from fmcore.run.sampling import generate
from fmcore.testing import ObjectiveConformance, PathConformance, SamplerConformance, exact_field

RECIPE = Path(__file__).parents[1] / "recipes" / "moons-cosine.toml"


class TestCosinePath(PathConformance):
    path = CosinePath(CosineOptions())


class TestMidpoint(SamplerConformance):
    sampler = Midpoint(Midpoint.Options(steps=50))


class TestFlowMatchingOnCosine(ObjectiveConformance):
    """The installed objectives train on the cosine path (CFM everywhere; DSM away from t = 0 and t = 1)."""

    paths = (CosinePath(CosineOptions()),)

    def make_objective(self):
        return get_registry().get("objective", "cfm").cls(get_registry().get("objective", "cfm").options_class())


def test_cosine_coefficients_in_closed_form():
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    alpha, beta, d_alpha, d_beta = CosinePath(CosineOptions()).coefficients(t)
    torch.testing.assert_close(alpha, torch.sin(math.pi * t / 2))
    torch.testing.assert_close(beta, torch.cos(math.pi * t / 2))
    torch.testing.assert_close(alpha**2 + beta**2, torch.ones_like(t))  # variance preserving
    assert float(beta[-1]) == 0.0 and float(alpha[0]) == 0.0  # exact ends, not 6e-17


def test_midpoint_is_second_order():
    """Halving the step divides the error (against a fine solution) by about 4 on an exact field."""
    field = exact_field()
    runs = {n: generate(field, Midpoint(Midpoint.Options(steps=n)), 256, (2,), seed=0).x.double()
            for n in (16, 32, 512)}
    err16, err32 = ((runs[n] - runs[512]).norm(dim=1).mean() for n in (16, 32))
    assert 3.2 < float(err16 / err32) < 5.0  # measured 3.65 (an Euler step would give about 2)


def test_installed_plugin_registers_both_components():
    registry = get_registry()
    assert registry.get("path", "cosine").package == "fmcore-cosine"
    assert registry.get("sampler", "midpoint").cls is Midpoint


def test_recipe_trains(tmp_path, capsys):
    code = main(["train", str(RECIPE), "--set", "train.steps=5", "--set", "train.log_every=5",
                 "--set", "sampler.steps=4", "--run-dir", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0
    assert "trained 5 steps" in out
    assert (tmp_path / "run" / "recipe.toml").is_file()


@pytest.mark.parametrize("name", ["dsm", "ddpm"])
def test_score_objectives_refuse_the_singular_ends_without_t_eps(name):
    objective_cls = get_registry().get("objective", name).cls
    objective = objective_cls(attrs.evolve(objective_cls.Options(), t_eps=0.0))
    problems = objective.problems(CosinePath(CosineOptions()))
    assert any(p.startswith("t=1: beta_1 = 0") for p in problems), problems
