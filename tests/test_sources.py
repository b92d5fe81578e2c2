"""Quasi-random (Sobol) prior sources: per-sample reproducible, normal, evenly spread; fm eval --source sobol;
the moons' thickness measure."""

from __future__ import annotations

import json
import math

import pytest
import torch
from fmcore_datasets.toy2d import moon_distance

from fmcore.core.noise import BatchNoise, sobol_normal
from tests.conftest import MOONS


def test_sobol_prior_depends_only_on_seed_and_index():
    whole = BatchNoise(3, 0, 256, (2,), "cpu", source="sobol").prior()
    parts = torch.cat([BatchNoise(3, s, 64, (2,), "cpu", source="sobol").prior() for s in range(0, 256, 64)])
    assert torch.equal(whole, parts)
    other = BatchNoise(4, 0, 256, (2,), "cpu", source="sobol").prior()
    assert not torch.allclose(whole, other)
    assert whole.shape == (256, 2) and whole.dtype == torch.float32


def test_sobol_points_are_standard_normal_and_far_more_even_than_iid():
    """Moments of 4,096 points: iid draws miss by ~1/sqrt(n) = 0.016, a scrambled Sobol net by far less."""
    x = sobol_normal(0, 0, 4096, (3,))
    assert float(x.mean(0).abs().max()) < 2e-3
    assert float((x.var(0) - 1).abs().max()) < 1e-2
    # the fraction in each orthant is 1/8 up to the net's structure (iid: std 0.005)
    orthant = ((x > 0).long() * torch.tensor([1, 2, 4])).sum(1)
    counts = torch.bincount(orthant, minlength=8).double() / 4096
    assert float((counts - 1 / 8).abs().max()) < 1e-3
    # image-shaped samples: one Sobol dimension per entry
    assert sobol_normal(0, 64, 8, (1, 2, 3)).shape == (8, 1, 2, 3)


def test_sobol_source_keeps_the_later_draws_of_iid():
    """An SDE sampler's noise after the prior draw is the same for both sources."""
    iid, sobol = BatchNoise(5, 0, 64, (2,), "cpu"), BatchNoise(5, 0, 64, (2,), "cpu", source="sobol")
    assert not torch.equal(iid.prior(), sobol.prior())
    assert torch.equal(iid.randn(), sobol.randn())
    with pytest.raises(ValueError, match="unknown noise source 'halton'"):
        BatchNoise(0, 0, 64, (2,), "cpu", source="halton")


def test_moon_distance_to_the_true_curves():
    theta = torch.linspace(0, math.pi, 50, dtype=torch.float64)
    upper = torch.stack([theta.cos(), theta.sin()], 1)
    lower = torch.stack([1 - theta.cos(), 0.5 - theta.sin()], 1)
    for curve, centre in ((upper, torch.tensor([0.0, 0.0])), (lower, torch.tensor([1.0, 0.5]))):
        on = curve * 3 - 1
        assert float(moon_distance(on).abs().max()) < 1e-12
        out = (centre + (curve - centre) * 1.02) * 3 - 1  # radially 0.02 off: 0.06 after scaling
        torch.testing.assert_close(moon_distance(out), torch.full((50,), 0.06, dtype=torch.float64))
    beyond = torch.tensor([[-1.5, 0.0], [-1.2, -0.5]], dtype=torch.float64) * 3 - 1
    torch.testing.assert_close(moon_distance(beyond), torch.tensor([1.5, 3 * math.sqrt(0.29)], dtype=torch.float64))


def test_fm_eval_source_sobol_reports_both_sources_and_thickness(tmp_path, write_recipe, fm):
    recipe = write_recipe(MOONS.replace('name = "moons"', 'name = "moons"\nnoise = 0.05'))
    assert fm("train", recipe, "--run-dir", tmp_path / "run")[0] == 0
    code, out, err = fm("eval", tmp_path / "run", "--n", "256", "--source", "sobol", "--json")
    assert code == 0, err
    values = json.loads(out)
    for key in ("w2", "w2_sobol", "w2_floor", "energy_sobol", "thickness", "thickness_sobol", "thickness_floor"):
        assert key in values, key
    assert values["w2_sobol_ratio"] == pytest.approx(values["w2_sobol"] / values["w2_floor"])
    # make_moons(noise = 0.05) scaled by 3: each point is off its curve by about 3 * 0.05 (less where the
    # noise moves it along the curve)
    assert 0.10 < values["thickness_floor"] < 0.16
    table = fm("eval", tmp_path / "run", "--n", "256", "--source", "sobol")[1]
    assert "w2 sobol" in table and "thickness sobol" in table
    plain = json.loads(fm("eval", tmp_path / "run", "--n", "256", "--json")[1])
    assert "w2_sobol" not in plain and plain["w2"] == values["w2"]


def test_sobol_source_beyond_its_dimensions_is_refused_by_the_recipe_check(tmp_path, write_recipe, fm):
    import numpy as np

    np.save(tmp_path / "big.npy", np.zeros((10, 3, 100, 100), dtype=np.float32))  # 30,000 numbers per sample
    text = MOONS.replace('name = "moons"', f'name = "file"\npath = "{tmp_path / "big.npy"}"').replace(
        'name = "euler"', 'name = "euler"\nsource = "sobol"')
    code, out, err = fm("recipe", "check", write_recipe(text))
    assert code == 2 and "source = 'sobol'" in err and "at most 21201 dimensions" in err
