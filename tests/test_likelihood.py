"""Log-densities through the probability-flow ODE against the exact log-density of Gaussian mixtures (float64
oracle fields), for CondOT, VP and VE, every parameterization, vector and image shapes; Hutchinson against its
standard errors; gradients against finite differences and the exact score."""

from __future__ import annotations

import math

import pytest
import torch
from fmcore_paths.condot import CondOTOptions, CondOTPath
from fmcore_paths.ve import VEOptions, VEPath
from fmcore_paths.vp import VPOptions, VPPath

from fmcore import Field, FmError, Prediction
from fmcore.core.likelihood import LikelihoodOptions, log_prob, resolve_divergence
from fmcore.core.oracle import GaussianMixture, Oracle, oracle_field

PATHS = {"condot": CondOTPath(CondOTOptions()), "vp": VPPath(VPOptions()), "ve": VEPath(VEOptions())}
ANGLES = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
RING = GaussianMixture.isotropic(4.0 * torch.stack([ANGLES.cos(), ANGLES.sin()], dim=1), 0.5)
G16 = torch.Generator().manual_seed(16)
MIX16 = GaussianMixture.isotropic(2.0 * torch.randn(6, 16, generator=G16, dtype=torch.float64), 0.5,
                                  torch.rand(6, generator=G16, dtype=torch.float64) + 0.5)
IMAGES = GaussianMixture.isotropic(torch.randn(3, 1, 4, 4, generator=G16, dtype=torch.float64), 0.4)
TIGHT = LikelihoodOptions(divergence="exact", rtol=1e-10, atol=1e-10)



def make_points(mix: GaussianMixture, n: int, seed: int = 0) -> torch.Tensor:
    """Half drawn from the mixture, half uniform over a box 2 units beyond its means."""
    g = torch.Generator().manual_seed(seed)
    means = mix.means.flatten(1)
    lo, hi = means.min(0).values - 2, means.max(0).values + 2
    box = lo + (hi - lo) * torch.rand(n - n // 2, means.shape[1], generator=g, dtype=torch.float64)
    return torch.cat([mix.sample(n // 2, g), box.reshape(-1, *mix.shape)])


def exact_at_ends(mix, field):
    """The exact log-density at the field's data end and the exact marginal at its noise end (the prior)."""
    lo, hi = field.time_range
    return mix.at(field.path, hi).log_prob, mix.at(field.path, lo).log_prob


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("mix", [RING, MIX16], ids=["ring2d", "mix16d"])
def test_exact_divergence_matches_the_mixture_density(name, mix):
    field = oracle_field(mix, PATHS[name])
    assert field.time_range == (0.0, 1.0)
    x = make_points(mix, 16 if mix is RING else 6)
    target, prior = exact_at_ends(mix, field)
    result = log_prob(field, x, TIGHT if mix is RING else LikelihoodOptions(divergence="exact", rtol=1e-9, atol=1e-9),
                      prior=prior)
    assert float((result.logp - target(x)).abs().max()) < 1e-4
    assert result.divergence == "exact" and bool((result.stderr == 0).all())


@pytest.mark.parametrize("name", PATHS)
def test_hutchinson_agrees_within_three_standard_errors(name):
    field = oracle_field(RING, PATHS[name])
    x = make_points(RING, 24, seed=1)
    target, prior = exact_at_ends(RING, field)
    options = LikelihoodOptions(divergence="hutchinson", probes=8, probe="gaussian", rtol=1e-8, atol=1e-8)
    result = log_prob(field, x, options, prior=prior)
    diff = result.logp - target(x)
    assert bool((result.stderr > 0).all())
    # every point, and the mean over points against its own standard error
    assert float((diff.abs() / result.stderr).max()) < 3 + 1e-9 or float((diff.abs() < 3 * result.stderr)
                                                                         .double().mean()) >= 0.9
    assert abs(float(diff.mean())) < 3 * float(result.stderr.pow(2).sum().sqrt()) / len(x)


def test_default_prior_neglect_is_within_the_stated_bound():
    """log N(x; 0, beta_0^2) against the exact p_0 of data with |z| <= R: the difference is within
    (alpha_0 |x| R + alpha_0^2 R^2 / 2) / beta_0^2 (docs/likelihood.md); it vanishes on CondOT (alpha_0 = 0)."""
    pts = RING.sample(200, torch.Generator().manual_seed(2))
    data = GaussianMixture.empirical(pts)
    radius = float(pts.norm(dim=1).max())
    x = 1.5 * torch.randn(100, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for name, path in PATHS.items():
        s = path.endpoint(0.0)
        gap = (data.at(path, 0.0).log_prob(x) - path.prior_log_prob(x)).abs()
        bound = (s.alpha * x.norm(dim=1) * radius + 0.5 * s.alpha**2 * radius**2) / s.beta**2
        assert bool((gap <= bound + 1e-12).all()), name
        if name == "condot":
            assert float(gap.max()) < 1e-12
        else:
            assert float(gap.max()) > 0.1 * float(bound.min())  # the bound is not vacuous here


@pytest.mark.parametrize("kind", list(Prediction))
def test_image_shaped_data_with_every_parameterization(kind):
    """[1, 4, 4] points on VP: the noise and data parameterizations stop at 1 - t_eps (beta_1 = 0), the others
    reach t = 1; both exact and Hutchinson divergences take any shape."""
    field = oracle_field(IMAGES, PATHS["vp"], kind)
    assert field.time_range[1] == (1.0 if kind in (Prediction.VELOCITY, Prediction.SCORE) else 1.0 - 1e-3)
    x = make_points(IMAGES, 8, seed=4)
    assert x.shape == (8, 1, 4, 4)
    target, prior = exact_at_ends(IMAGES, field)
    exact = log_prob(field, x, LikelihoodOptions(divergence="exact", rtol=1e-8, atol=1e-8), prior=prior)
    assert float((exact.logp - target(x)).abs().max()) < 1e-4
    hutch = log_prob(field, x, LikelihoodOptions(divergence="hutchinson", probes=6, rtol=1e-5, atol=1e-5),
                     prior=prior)
    diff = hutch.logp - target(x)
    assert hutch.divergence == "hutchinson" and bool((hutch.stderr > 0).all())
    assert abs(float(diff.mean())) < 3 * float(hutch.stderr.pow(2).sum().sqrt()) / len(x)


def test_rk4_solver_converges():
    field = oracle_field(RING, PATHS["condot"])
    x = make_points(RING, 8, seed=5)
    target = RING.log_prob(x)
    errs = [float((log_prob(field, x, LikelihoodOptions(divergence="exact", solver="rk4", steps=n)).logp
                   - target).abs().max()) for n in (50, 100)]
    assert errs[1] < errs[0] / 8 and errs[1] < 1e-3, errs


def test_auto_divergence_and_probe_seeding():
    assert resolve_divergence("auto", 32) == "exact" and resolve_divergence("auto", 33) == "hutchinson"
    field = oracle_field(MIX16.at(PATHS["condot"], 1.0), PATHS["condot"])
    x = make_points(MIX16, 8, seed=6)
    options = LikelihoodOptions(divergence="hutchinson", probes=3, rtol=1e-6, atol=1e-6)
    full = log_prob(field, x, options)
    part = log_prob(field, x[:3], options)  # probes depend on (seed, index), not on the batch
    torch.testing.assert_close(part.logp, full.logp[:3], rtol=1e-10, atol=1e-10)
    other = log_prob(field, x, LikelihoodOptions(divergence="hutchinson", probes=3, rtol=1e-6, atol=1e-6, seed=1))
    assert not torch.equal(other.logp, full.logp)


def test_gradient_in_x_is_the_score_and_matches_finite_differences():
    field = oracle_field(RING, PATHS["vp"])
    x = make_points(RING, 6, seed=7).requires_grad_(True)
    _, prior = exact_at_ends(RING, field)
    options = LikelihoodOptions(divergence="exact", solver="rk4", steps=60)
    result = log_prob(field, x, options, prior=prior, grad=True)
    (grad,) = torch.autograd.grad(result.logp.sum(), x)
    score = Oracle(RING, PATHS["vp"], Prediction.SCORE)(x.detach(), torch.ones(6, dtype=torch.float64))
    torch.testing.assert_close(grad, score, rtol=1e-3, atol=1e-3)
    # the discrete rk4 map is differentiated exactly: central differences agree to roundoff
    h = 1e-6
    for i in range(2):
        e = torch.zeros_like(x)
        e[:, i] = h
        fd = (log_prob(field, x.detach() + e, options, prior=prior).logp
              - log_prob(field, x.detach() - e, options, prior=prior).logp) / (2 * h)
        torch.testing.assert_close(grad[:, i], fd, rtol=1e-6, atol=1e-6)


def test_gradient_reaches_network_parameters():
    """d log p / d s for a velocity field s * u(x, t) (a parameter of the 'network'), against finite differences."""
    path = PATHS["condot"]
    oracle = Oracle(RING, path)

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.s = torch.nn.Parameter(torch.tensor(0.9, dtype=torch.float64))

        def forward(self, x, t, cond=None):
            return self.s * oracle(x, t)

    net = Scaled()
    field = Field(net, path)
    x = make_points(RING, 4, seed=8)
    options = LikelihoodOptions(divergence="hutchinson", probes=2, solver="rk4", steps=40)
    (grad,) = torch.autograd.grad(log_prob(field, x, options, grad=True).logp.sum(), net.s)
    h = 1e-6
    with torch.no_grad():
        net.s += h
        up = log_prob(field, x, options).logp.sum()
        net.s -= 2 * h
        down = log_prob(field, x, options).logp.sum()
    assert float(grad) == pytest.approx(float((up - down) / (2 * h)), rel=1e-6)


def test_non_finite_density_is_an_error():
    path = PATHS["condot"]
    pts = RING.sample(20, torch.Generator().manual_seed(0))
    field = Field(Oracle(GaussianMixture.empirical(pts), path), path)  # point masses: singular at t = 1
    with pytest.raises(FmError):
        log_prob(field, pts[:2], LikelihoodOptions(divergence="exact", max_steps=50))
