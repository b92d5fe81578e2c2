"""Oracle fields: exact marginal velocity/score of Gaussian mixtures, checked against calculus, not constants."""

from __future__ import annotations

import math

import pytest
import torch
from fmcore_datasets.toy2d import EightGaussians, NoOptions
from fmcore_networks.oracle import OracleNetwork, OracleOptions

from fmcore import ArrayDataset, DataInfo, Field, Prediction, reverse_diffusion_sq
from fmcore.core.oracle import GaussianMixture, Oracle, oracle_field, oracle_time_range
from tests.tables import DEFAULT_PATHS

PATHS = DEFAULT_PATHS
MIX = GaussianMixture.isotropic(torch.tensor([[3.0, 0.0], [-1.5, 2.6], [-1.5, -2.6], [0.0, 0.0]]), 0.5,
                                torch.tensor([0.3, 0.3, 0.2, 0.2]))




def log_density(mix: GaussianMixture, path, x: torch.Tensor, t: float) -> torch.Tensor:
    """log p_t(x) of the marginal mixture, written independently of fmcore.core.oracle."""
    s = path.endpoint(t)
    var = s.alpha**2 * mix.stds**2 + s.beta**2
    d = x.shape[1]
    sq = ((x[:, None, :] - s.alpha * mix.means[None]) ** 2).sum(-1)
    comp = mix.weights.log() - 0.5 * d * torch.log(2 * math.pi * var) - 0.5 * sq / var
    return torch.logsumexp(comp, dim=1)


def points(n: int = 64, seed: int = 0) -> torch.Tensor:
    return 3.0 * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_score_is_gradient_of_log_density(name, t):
    path = PATHS[name]
    x = points().requires_grad_(True)
    (grad,) = torch.autograd.grad(log_density(MIX, path, x, t).sum(), x)
    score = Oracle(MIX, path, Prediction.SCORE)(x.detach(), torch.full((64,), t, dtype=torch.float64))
    torch.testing.assert_close(score, grad, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("t", [0.2, 0.6, 0.95])
def test_velocity_solves_continuity_equation(name, t):
    """d/dt log p_t + div u + u . grad log p_t = 0, with a central time difference and autograd divergence."""
    path = PATHS[name]
    oracle = Oracle(MIX, path, Prediction.VELOCITY)
    x = points(32, 1).requires_grad_(True)
    tt = torch.full((32,), t, dtype=torch.float64)
    u = oracle(x, tt)
    div = sum(torch.autograd.grad(u[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(2))
    dt = 1e-5
    dlogp = (log_density(MIX, path, x.detach(), t + dt) - log_density(MIX, path, x.detach(), t - dt)) / (2 * dt)
    score = Oracle(MIX, path, Prediction.SCORE)(x.detach(), tt)
    residual = dlogp + div + (u.detach() * score).sum(1)
    scale = dlogp.abs().max() + div.abs().max()
    assert float(residual.abs().max()) < 1e-6 * float(scale) + 1e-6


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("kind", list(Prediction))
def test_every_parameterization_gives_the_same_field(name, kind):
    """An oracle predicting ``kind``, read through Field, gives the velocity and score of the velocity oracle."""
    path = PATHS[name]
    x, t = points(), torch.full((64,), 0.7, dtype=torch.float64)
    ref = Field(Oracle(MIX, path, Prediction.VELOCITY), path, Prediction.VELOCITY)
    f = Field(Oracle(MIX, path, kind), path, kind)
    torch.testing.assert_close(f.velocity(x, t), ref.velocity(x, t), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(f.score(x, t), ref.score(x, t), rtol=1e-9, atol=1e-9)


def test_single_gaussian_closed_form():
    """K = 1: u = d_alpha m + (d var/dt) / (2 var) (x - alpha m), var = alpha^2 s^2 + beta^2."""
    path = PATHS["vp"]
    mix = GaussianMixture.isotropic(torch.tensor([[1.0, -2.0]]), 0.3)
    x, t = points(), 0.6
    s = path.endpoint(t)
    var = s.alpha**2 * 0.09 + s.beta**2
    dvar = 2 * s.alpha * s.d_alpha * 0.09 + 2 * s.beta * s.d_beta
    m = mix.means[0]
    expected = s.d_alpha * m + dvar / (2 * var) * (x - s.alpha * m)
    got = Oracle(mix, path)(x, torch.full((64,), t, dtype=torch.float64))
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_marginal_at_time_matches_path_samples():
    path = PATHS["condot"]
    g = torch.Generator().manual_seed(0)
    z = MIX.sample(200_000, g)
    xt = 0.4 * z + 0.6 * torch.randn(z.shape, generator=g, dtype=torch.float64)
    exact = MIX.at(path, 0.4).sample(200_000, g)
    torch.testing.assert_close(xt.mean(0), exact.mean(0), atol=0.02, rtol=0)
    torch.testing.assert_close(xt.std(0), exact.std(0), atol=0.02, rtol=0)


def test_reverse_diffusion_matches_vp_and_ve():
    t = torch.linspace(0.0, 0.99, 12, dtype=torch.float64)
    like = torch.zeros(12, 1, dtype=torch.float64)
    vp = PATHS["vp"]
    b = 0.1 + (1 - t) * (20.0 - 0.1)
    torch.testing.assert_close(reverse_diffusion_sq(vp.schedule(t, like)).flatten(), b, rtol=1e-10, atol=1e-10)
    ve = PATHS["ve"]
    sigma_sq = lambda s: (0.01 * (10.0 / 0.01) ** s) ** 2  # noqa: E731 - diffusion time s = 1 - t
    h = 1e-6
    dsig = (sigma_sq(1 - t + h) - sigma_sq(1 - t - h)) / (2 * h)
    torch.testing.assert_close(reverse_diffusion_sq(ve.schedule(t, like)).flatten(), dsig, rtol=1e-6, atol=0)
    co = PATHS["condot"]
    tc = t[1:]
    torch.testing.assert_close(reverse_diffusion_sq(co.schedule(tc, like[1:])).flatten(), 2 * (1 - tc) / tc)
    assert math.isinf(float(reverse_diffusion_sq(co.schedule(t[:1], like[:1]))))


def test_empirical_oracle_denoises_to_nearest_point_and_avoids_t1():
    pts = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    mix = GaussianMixture.empirical(pts)
    path = PATHS["condot"]
    assert oracle_time_range(mix, path, Prediction.VELOCITY, 1e-3) == (0.0, 1.0 - 1e-3)
    x = torch.tensor([[3.7, 0.4], [0.3, 3.1]], dtype=torch.float64)
    z = Oracle(mix, path, Prediction.DATA)(x * 0.99, torch.full((2,), 0.99, dtype=torch.float64))
    torch.testing.assert_close(z, pts[[1, 2]])
    f = oracle_field(mix, path)
    assert torch.isfinite(f.velocity(x, torch.tensor(1.0, dtype=torch.float64))).all()


def test_eight_gaussians_mixture_is_its_law():
    ds = EightGaussians(NoOptions())
    mix = ds.mixture()
    x = ds.sample(100_000, torch.Generator().manual_seed(0)).x.double()
    exact = mix.sample(100_000, torch.Generator().manual_seed(1))
    torch.testing.assert_close(x.mean(0), exact.mean(0), atol=0.05, rtol=0)
    torch.testing.assert_close(x.var(0), exact.var(0), rtol=0.02, atol=0)
    torch.testing.assert_close(mix.stds, torch.full((8,), math.sqrt(0.1), dtype=torch.float64))


def test_oracle_network_binds_dataset():
    data = torch.randn(5000, 2, generator=torch.Generator().manual_seed(0))
    net = OracleNetwork(OracleOptions(max_points=300), DataInfo((2,)))
    assert sum(p.numel() for p in net.parameters()) == 0 and not net.trainable
    with pytest.raises(Exception, match="not bound"):
        net(torch.zeros(2, 2), torch.zeros(2))
    path = PATHS["condot"]
    net.bind(ArrayDataset(data), path, Prediction.DATA)
    assert net.oracle.mixture.means.shape == (300, 2)
    net.bind(EightGaussians(NoOptions()), path, Prediction.SCORE)
    assert net.oracle.mixture.means.shape == (8, 2) and float(net.oracle.mixture.stds[0]) > 0
    out = net(torch.zeros(4, 2), torch.full((4,), 0.5))
    assert out.shape == (4, 2) and out.dtype == torch.float32
