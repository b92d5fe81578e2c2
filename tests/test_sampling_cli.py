"""`fm sample` and `fm eval` end to end on an oracle run directory (nothing to train)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import oracle_recipe

ORACLE = oracle_recipe("heun", 16)


@pytest.fixture
def oracle_run(fm, write_recipe, tmp_path):
    code, out, err = fm("oracle", write_recipe(ORACLE), "--run-dir", tmp_path / "run")
    assert code == 0, err
    return tmp_path / "run"


@pytest.mark.parametrize("sampler,sets", [
    ("euler", ["sampler.steps=20"]),
    ("heun", ["sampler.steps=10", "sampler.grid=data"]),
    ("euler_maruyama", ["sampler.steps=30", "sampler.diffusion=constant", "sampler.diffusion.scale=0.5"]),
    ("langevin", ["sampler.steps=10", "sampler.steps_per_level=2"]),
    ("pc", ["sampler.steps=10", "sampler.predictor=heun", "sampler.corrector_steps=2"]),
])
def test_sample_any_sampler_reproducible_across_batch_sizes(fm, oracle_run, tmp_path, sampler, sets):
    args = [a for s in sets for a in ("--set", s)]
    code, out, err = fm("sample", oracle_run, "--sampler", sampler, *args, "--n", 200, "--seed", 3,
                        "--batch-size", 64, "--out", tmp_path / "a.npy", "--device", "cpu")
    assert code == 0, err
    assert f"with {sampler}" in out
    code, _, err = fm("sample", oracle_run, "--sampler", sampler, *args, "--n", 200, "--seed", 3,
                      "--out", tmp_path / "b.npy", "--device", "cpu")
    assert code == 0, err
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert a.shape == (200, 2) and np.array_equal(a, b) and np.isfinite(a).all()


def test_sample_reports_nfe_and_draws_trajectories(fm, oracle_run, tmp_path):
    code, out, err = fm("sample", oracle_run, "--n", 100, "--out", tmp_path / "s.npy", "--trajectory",
                        tmp_path / "t.png", "--trajectory-points", 8, "--device", "cpu")
    assert code == 0, err
    assert "(32 network evaluations each" in out  # heun, 16 steps
    assert (tmp_path / "t.png").stat().st_size > 1000


def test_sample_rejects_unknown_sampler_option(fm, oracle_run, tmp_path):
    code, _, err = fm("sample", oracle_run, "--sampler", "euler_maruyama", "--set", "sampler.difusion=zero",
                      "--out", tmp_path / "s.npy", "--device", "cpu")
    assert code == 2 and "difusion" in err


def test_eval_table_and_json(fm, oracle_run):
    code, out, err = fm("eval", oracle_run, "--n", 400, "--device", "cpu")
    assert code == 0, err
    assert "w2" in out and "energy" in out and "ratio" in out
    code, out, err = fm("eval", oracle_run, "--n", 400, "--json", "--device", "cpu")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) >= {"n", "w2", "w2_floor", "w2_ratio", "energy", "energy_floor"}
    # the exact field with Heun is a near-perfect sampler: within the data-vs-data floor's fluctuation
    assert result["w2"] < 1.6 * result["w2_floor"]


def test_oracle_run_replaces_a_trainable_network_and_refuses_a_used_directory(fm, write_recipe, tmp_path):
    recipe = write_recipe(ORACLE.replace('name = "oracle"', 'name = "mlp"\nhidden = [8]'))
    code, out, err = fm("oracle", recipe, "--run-dir", tmp_path / "run2")
    assert code == 0, err
    assert 'name = "oracle"' in (tmp_path / "run2" / "recipe.toml").read_text()
    code, out, err = fm("oracle", recipe, "--run-dir", tmp_path / "run2")
    assert code == 2 and "already exists and is not empty" in err
