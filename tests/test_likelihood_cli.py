"""`fm logp`, `fm eval --nll`, the Python API and the gaussian_mixture data set on exact-field runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fmcore_datasets.gaussian_mixture import GaussianMixtureData, GaussianMixtureOptions
from fmcore_paths.condot import CondOTOptions, CondOTPath

import fmcore
from fmcore.core.oracle import GaussianMixture
from fmcore.run.likelihood import dequantize, gaussian_baseline

RECIPE = """
[data]
name = "gaussian_mixture"
means = [[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]]
std = 0.5
weights = [2, 1, 1]

[path]
name = "condot"

[objective]
name = "cfm"

[network]
name = "oracle"

[sampler]
name = "dopri5"
rtol = 1e-6
atol = 1e-6
"""



def expected_mixture() -> GaussianMixture:
    return GaussianMixture.isotropic(torch.tensor([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]]), 0.5,
                                     torch.tensor([2.0, 1.0, 1.0]))


@pytest.fixture
def oracle_run(tmp_path, write_recipe, fm):
    code, out, err = fm("oracle", write_recipe(RECIPE), "--run-dir", tmp_path / "run")
    assert code == 0, err
    return tmp_path / "run"


def test_gaussian_mixture_data_set_is_its_exact_law(tmp_path):
    data = GaussianMixtureData(GaussianMixtureOptions(means=[[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]],
                                                      weights=[2, 1, 1]))
    mix, want = data.mixture(), expected_mixture()
    torch.testing.assert_close(mix.means, want.means)
    torch.testing.assert_close(mix.weights, torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64))
    x = data.sample(20000, torch.Generator().manual_seed(0)).x.double()
    torch.testing.assert_close(x.mean(0), (want.weights[:, None] * want.means).sum(0), atol=0.05, rtol=0)
    np.save(tmp_path / "means.npy", np.zeros((4, 1, 2, 2)))
    from_file = GaussianMixtureData(GaussianMixtureOptions(means_file=str(tmp_path / "means.npy"), std=0.1))
    assert from_file.info.shape == (1, 2, 2) and from_file.mixture().means.shape == (4, 1, 2, 2)
    ring = GaussianMixtureData(GaussianMixtureOptions()).mixture()
    assert ring.means.shape == (8, 2) and torch.allclose(ring.means.norm(dim=1), torch.full((8,), 4.0,
                                                                                          dtype=torch.float64))


@pytest.mark.parametrize("extra, message", [
    ('means_file = "m.npy"', "either as a list (means) or as a .npy file (means_file), not both"),
    ("weights = [1, 1]", "weights has 2 entries for 3 means"),
])
def test_gaussian_mixture_option_errors(extra, message, tmp_path, write_recipe, fm):
    np.save(tmp_path / "m.npy", np.zeros((3, 2)))
    text = RECIPE.replace("weights = [2, 1, 1]", "").replace("std = 0.5", f"std = 0.5\n{extra}")
    code, _, err = fm("recipe", "check", write_recipe(text))
    assert code == 2 and message in err, err


def test_fm_logp_matches_the_exact_density(oracle_run, tmp_path, fm):
    mix = expected_mixture()
    g = torch.Generator().manual_seed(1)
    pts = torch.cat([mix.sample(10, g), 6 * torch.rand(10, 2, generator=g, dtype=torch.float64) - 3])
    np.save(tmp_path / "pts.npy", pts.numpy())
    code, out, err = fm("logp", oracle_run, "--points", tmp_path / "pts.npy", "--out", tmp_path / "lp.npy",
                        "--dtype", "float64", "--divergence", "exact", "--rtol", "1e-9", "--atol", "1e-9",
                        "--device", "cpu")
    assert code == 0, err
    assert "20 log-densities at t = 1 (exact divergence, dopri5" in out
    logp = np.load(tmp_path / "lp.npy")
    assert np.abs(logp - mix.log_prob(pts).numpy()).max() < 1e-4  # CondOT: alpha_0 = 0, the prior is exact
    code, out, err = fm("logp", oracle_run, "--points", tmp_path / "pts.npy", "--out", tmp_path / "h.npy",
                        "--divergence", "hutchinson", "--probes", "4", "--device", "cpu")
    assert code == 0, err
    assert np.load(tmp_path / "h.stderr.npy").shape == (20,)


def test_fm_logp_errors(oracle_run, tmp_path, fm):
    np.save(tmp_path / "bad.npy", np.zeros((5, 3)))
    code, _, err = fm("logp", oracle_run, "--points", tmp_path / "bad.npy", "--out", tmp_path / "o.npy")
    assert code == 2 and "do not match the run's data shape (2,)" in err
    code, _, err = fm("logp", oracle_run, "--points", tmp_path / "missing.npy", "--out", tmp_path / "o.npy")
    assert code == 2 and "expected an existing .npy file" in err
    np.save(tmp_path / "pts.npy", np.zeros((3, 2)))
    code, _, err = fm("logp", oracle_run, "--points", tmp_path / "pts.npy", "--out", tmp_path / "o.npy",
                      "--rtol", "1e-12", "--atol", "1e-12", "--max-steps", "3")
    assert code == 2 and "step budget of 3 steps" in err


def test_fm_eval_nll_and_the_python_api(oracle_run, fm):
    code, out, err = fm("eval", oracle_run, "--nll", "--n", "200", "--device", "cpu")
    assert code == 0, err
    assert "held-out NLL, n = 200, D = 2 (continuous data" in out and "Gaussian (mean, cov)" in out
    run = fmcore.load_run(oracle_run)
    report = run.nll(200, device="cpu")
    # the exact model's held-out NLL is the entropy of the mixture, estimated on 200 points: compare with the
    # exact log-density of the same points, and the model beats the Gaussian fit
    mix = expected_mixture()
    ref = run.components.dataset.reference(200, seed=1_000_003).x.double()
    exact_nll = float(-mix.log_prob(ref).mean())
    assert report["model_nll"] == pytest.approx(exact_nll, abs=1e-3)
    assert report["model_bpd"] == pytest.approx(report["model_nll"] / (2 * math.log(2)))
    assert report["model_nll"] < report["gaussian_nll"]
    logp = run.logp(ref[:5], divergence="exact", rtol=1e-8, atol=1e-8, device="cpu", dtype=torch.float64)
    torch.testing.assert_close(logp.logp, mix.log_prob(ref[:5]), atol=1e-5, rtol=0)
    with pytest.raises(fmcore.FmError, match="probes"):
        run.logp(ref[:5], probes=0)


def test_dequantization_and_bits_per_dim_convention():
    """Discrete data on a grid of bin b: dequantized points stay in their bins, and a Gaussian fitted to them
    scores close to the exact log-probability of the discrete law plus D log b (bits/dim shift)."""
    x = torch.tensor([[0.0, 0.125], [-1.0, 1.0]], dtype=torch.float64)
    y = dequantize(x, 0.125, seed=0)
    assert bool(((y - x).abs() <= 0.0625).all()) and not torch.equal(x, y)
    assert torch.equal(dequantize(x, None, seed=0), x)

    class Discrete:
        """Points on the 1/8 grid drawn from a rounded N(0, 0.5^2 I): continuous density ~ exact here."""

        def sample(self, n, generator):
            from fmcore import Batch

            z = 0.5 * torch.randn(n, 2, generator=generator, dtype=torch.float64)
            return Batch(torch.round(z * 8) / 8)

    pts = Discrete().sample(4000, torch.Generator().manual_seed(5)).x
    logp = gaussian_baseline(Discrete(), dequantize(pts, 0.125, 1), 0.125, seed=2)
    # the discrete probability of a bin is ~ density * b^D: NLL_discrete = -log p(y) - D log b
    nll_discrete = float((-logp - 2 * math.log(0.125)).mean())
    exact = float(-(torch.distributions.Normal(0.0, 0.5).log_prob(pts) + math.log(0.125)).sum(1).mean())
    assert nll_discrete == pytest.approx(exact, abs=0.05)


def test_condot_prior_is_the_standard_normal():
    path = CondOTPath(CondOTOptions())
    x = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(path.prior_log_prob(x), torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(1))


def test_fm_sample_with_dopri5_reports_mean_and_max_nfe(oracle_run, tmp_path, fm):
    code, out, err = fm("sample", oracle_run, "--n", "100", "--out", tmp_path / "s.npy", "--device", "cpu")
    assert code == 0, err
    assert "network evaluations per sample on average, at most" in out
    code, out, err = fm("sample", oracle_run, "--n", "100", "--out", tmp_path / "e.npy", "--sampler", "rk4",
                        "--set", "sampler.steps=5", "--device", "cpu")
    assert code == 0 and "(20 network evaluations each" in out


def test_eval_nll_refuses_sampler_options(oracle_run, fm):
    code, _, err = fm("eval", oracle_run, "--nll", "--sampler", "heun")
    assert code == 2 and "--sampler, --set, --guidance and --features do not apply" in err


def test_logp_in_another_dtype_leaves_the_network_as_it_was(tmp_path, write_recipe):
    from fmcore.run.likelihood import run_log_prob
    from fmcore.run.rundir import OpenedRun

    recipe = fmcore.load_recipe(write_recipe(RECIPE.replace('name = "oracle"', 'name = "mlp"\nhidden = [8]')))
    c = fmcore.build(recipe, training=True)
    assert next(c.network.parameters()).dtype == torch.float32
    opened = OpenedRun(tmp_path, recipe, c, tmp_path / "model.safetensors", None)
    out = run_log_prob(opened, torch.zeros(3, 2, dtype=torch.float64), dtype=torch.float64)
    assert out.logp.dtype == torch.float64 and next(c.network.parameters()).dtype == torch.float32
