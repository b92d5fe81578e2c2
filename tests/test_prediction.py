"""fmcore.core.prediction: the one conversion between velocity, score, noise and data predictions, on every path."""

from __future__ import annotations

import itertools

import pytest
import torch
from fmcore_samplers.euler import Euler

from fmcore.core.field import Field
from fmcore.core.noise import BatchNoise
from fmcore.core.path import GaussianPath
from fmcore.core.prediction import Prediction, convert, from_data_noise, to_data_noise
from fmcore.core.sampler import SamplerOptions
from tests.tables import PATHS

F64 = torch.float64
KINDS = list(Prediction)


def setup(name: str, shape=(2,), n: int = 64, seed: int = 0):
    """Path, data z, noise eps, interior times t and x = alpha z + beta eps (float64)."""
    path = PATHS[name]()
    g = torch.Generator().manual_seed(seed)
    z, eps = torch.randn(n, *shape, generator=g, dtype=F64), torch.randn(n, *shape, generator=g, dtype=F64)
    t = torch.rand(n, generator=g, dtype=F64) * 0.9 + 0.05
    ps = path.sample(z, t, eps)
    return path, z, eps, t, ps.x, ps.schedule


def exact_targets(path: GaussianPath, z, eps, t, x) -> dict[Prediction, torch.Tensor]:
    """Each kind's conditional target, from the path's own (autograd-tested) closed forms."""
    return {
        Prediction.VELOCITY: path.conditional_velocity(x, z, t),
        Prediction.SCORE: path.conditional_score(x, z, t),
        Prediction.NOISE: eps,
        Prediction.DATA: z,
    }


@pytest.mark.parametrize("name", list(PATHS))
@pytest.mark.parametrize("shape", [(2,), (3, 4, 4)])
def test_round_trip(name, shape):
    """Any prediction converts to any other kind and back to float64 precision."""
    path, _z, _eps, _t, x, s = setup(name, shape)
    pred = torch.randn(x.shape, generator=torch.Generator().manual_seed(9), dtype=F64)
    for source, target in itertools.product(KINDS, KINDS):
        there = convert(pred, source, target, x, s)
        assert there.shape == x.shape and there.dtype == F64
        torch.testing.assert_close(convert(there, target, source, x, s), pred, rtol=1e-9, atol=1e-9,
                                   msg=lambda m, a=source, b=target: f"{a} -> {b} -> {a}: {m}")


@pytest.mark.parametrize("name", list(PATHS))
@pytest.mark.parametrize("shape", [(2,), (3, 4, 4)])
def test_exact_targets_convert_to_exact_targets(name, shape):
    path, z, eps, t, x, s = setup(name, shape)
    exact = exact_targets(path, z, eps, t, x)
    for source, target in itertools.product(KINDS, KINDS):
        torch.testing.assert_close(convert(exact[source], source, target, x, s), exact[target], rtol=1e-9,
                                   atol=1e-9, msg=lambda m, a=source, b=target: f"{a} -> {b}: {m}")


@pytest.mark.parametrize("name", list(PATHS))
def test_data_noise_pair(name):
    path, z, eps, t, x, s = setup(name)
    for kind, pred in exact_targets(path, z, eps, t, x).items():
        z_hat, eps_hat = to_data_noise(pred, kind, x, s)
        torch.testing.assert_close(z_hat, z, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(eps_hat, eps, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(from_data_noise(z, eps, kind, s), pred, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", list(PATHS))
def test_score_velocity_identity_of_the_seeds(name):
    """The seeds' form: u = (beta^2 d_alpha / alpha - beta d_beta) s + (d_alpha / alpha) x, for any s."""
    _path, _z, _eps, _t, x, s = setup(name)
    score = torch.randn(x.shape, generator=torch.Generator().manual_seed(4), dtype=F64)
    u = (s.beta**2 * s.d_alpha / s.alpha - s.beta * s.d_beta) * score + (s.d_alpha / s.alpha) * x
    torch.testing.assert_close(convert(score, Prediction.SCORE, Prediction.VELOCITY, x, s), u, rtol=1e-9, atol=1e-9)


# -- marginal quantities: a Gaussian data distribution N(m, c^2 I) has a closed-form marginal path ---------------
M, C = torch.tensor([1.5, -2.0], dtype=F64), 0.5


def marginal_score(path: GaussianPath, x, t):
    """x_t ~ N(alpha m, (alpha^2 c^2 + beta^2) I), so grad log p_t(x) = -(x - alpha m) / (alpha^2 c^2 + beta^2)."""
    s = path.schedule(t, x)
    return -(x - s.alpha * M) / (s.alpha**2 * C**2 + s.beta**2)


def marginal_velocity(path: GaussianPath, x, t):
    """u_t(x) = d_alpha E[z | x] + d_beta E[eps | x] with the Gaussian posterior means."""
    s = path.schedule(t, x)
    var = s.alpha**2 * C**2 + s.beta**2
    r = x - s.alpha * M
    return s.d_alpha * (M + s.alpha * C**2 * r / var) + s.d_beta * s.beta * r / var


@pytest.mark.parametrize("name", list(PATHS))
def test_marginal_score_converts_to_marginal_velocity(name):
    path, _z, _eps, t, x, s = setup(name)
    v = convert(marginal_score(path, x, t), Prediction.SCORE, Prediction.VELOCITY, x, s)
    torch.testing.assert_close(v, marginal_velocity(path, x, t), rtol=1e-9, atol=1e-9)
    field = Field(lambda xx, tt, cond=None: marginal_score(path, xx, tt), path, Prediction.SCORE)
    v2, s2 = field.velocity_and_score(x, t)
    torch.testing.assert_close(v2, v, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(s2, marginal_score(path, x, t), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", list(PATHS))
@pytest.mark.parametrize("kind", [Prediction.SCORE, Prediction.NOISE, Prediction.VELOCITY])
def test_exact_field_sampled_with_euler_follows_exact_flow(name, kind):
    """Euler on the exact marginal field, read through each parameterization, started from the path's prior at
    the start of its safe time range. For Gaussian data the exact flow is affine,
    ``x_1 = m + c (x_lo - alpha_lo m) / sqrt(alpha_lo^2 c^2 + beta_lo^2)``, so each sample's end point is known:
    checks prior scale, time clamping and the conversions near both ends."""
    path = PATHS[name]()

    def network(x, t, cond=None):
        if kind is Prediction.VELOCITY:  # converting a score to a velocity at alpha = 0 is what cannot be done
            return marginal_velocity(path, x, t)
        return convert(marginal_score(path, x, t), Prediction.SCORE, kind, x, path.schedule(t, x))

    t_lo = 1e-3 if path.endpoint(0.0).alpha == 0 and kind is not Prediction.VELOCITY else 0.0
    t_hi = 1 - 1e-3 if path.endpoint(1.0).beta == 0 or not torch.isfinite(path.endpoint(1.0).d_beta) else 1.0
    field = Field(network, path, kind, time_range=(t_lo, t_hi))
    lo, hi = path.endpoint(t_lo), path.endpoint(t_hi)
    errors = []
    for steps in (200, 800):
        noise = BatchNoise(0, 0, 256, (2,), torch.device("cpu"), dtype=F64)
        x0 = path.prior_sample(noise.randn())
        x = Euler(SamplerOptions(steps=steps)).run(field, x0, noise).x
        # the exact flow from t_lo to t_hi (at t_hi < 1 the marginal is N(alpha m, alpha^2 c^2 + beta^2))
        expected = hi.alpha * M + (hi.alpha**2 * C**2 + hi.beta**2).sqrt() * (x0 - lo.alpha * M) / (
            lo.alpha**2 * C**2 + lo.beta**2).sqrt()
        errors.append(float((x - expected).abs().max()))
    # Euler is first order: 4x the steps, about 1/4 the error; no bias from the prior or the clamped ends
    assert errors[0] < (0.12 if name == "ve" else 0.03)
    assert errors[1] < errors[0] / 3.5
