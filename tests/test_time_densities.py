"""The 'power' training-time density: u = U^(1/k) has density k u^(k-1)."""

from __future__ import annotations

import pytest
import torch
from fmcore_objectives.timedensities import Power, PowerOptions


@pytest.mark.parametrize("k", [0.5, 1.0, 2.0, 3.0])
def test_power_density_has_cdf_u_to_the_k(k):
    g = torch.Generator().manual_seed(0)
    u = Power(PowerOptions(power=k)).sample(200_000, "cpu", g)
    assert u.shape == (200_000,) and float(u.min()) >= 0.0 and float(u.max()) <= 1.0
    for q in (0.1, 0.5, 0.9):
        assert float((u <= q).double().mean()) == pytest.approx(q**k, abs=4e-3)  # P(U^(1/k) <= q) = q^k
    assert float(u.double().mean()) == pytest.approx(k / (k + 1), abs=3e-3)


def test_power_times_map_onto_the_objective_range():
    t = Power(PowerOptions(power=2.0)).times(1000, (0.1, 0.9), "cpu", torch.Generator().manual_seed(1))
    assert 0.1 <= float(t.min()) and float(t.max()) <= 0.9


def test_moons_sharp_recipe_loads_with_its_components(registry):
    from pathlib import Path

    from fmcore.recipe.recipe import load_recipe

    recipe = load_recipe(Path(__file__).parents[1] / "examples" / "recipes" / "moons-sharp.toml", registry)
    assert recipe.data.options.noise == 0.05 and recipe.objective.options.target == "stable"
    assert recipe.objective.options.time_sampling.name == "power" and recipe.sampler.name == "heun"
    assert recipe.coupling.name == "independent"
