"""The built-in Gaussian paths (condot, vp, ve) against closed forms, autograd and the discrete DDPM chain."""

from __future__ import annotations

import math

import pytest
import torch
from fmcore_paths.condot import CondOTOptions, CondOTPath
from fmcore_paths.ve import VEOptions, VEPath
from fmcore_paths.vp import VPOptions, VPPath

from fmcore.core.field import safe_time_range, singular_ends
from fmcore.core.options import OptionValueError
from fmcore.core.path import GaussianPath
from fmcore.core.prediction import Prediction

F64 = torch.float64


def make(name: str) -> GaussianPath:
    return {
        "condot": lambda: CondOTPath(CondOTOptions()),
        "condot-smin": lambda: CondOTPath(CondOTOptions(sigma_min=0.1)),
        "vp": lambda: VPPath(VPOptions()),
        "vp-custom": lambda: VPPath(VPOptions(beta_min=0.5, beta_max=10.0)),
        "ve": lambda: VEPath(VEOptions(sigma_min=0.01, sigma_max=10.0)),
        "ve-50": lambda: VEPath(VEOptions(sigma_min=0.02, sigma_max=50.0)),
    }[name]()


NAMES = ["condot", "condot-smin", "vp", "vp-custom", "ve", "ve-50"]


def closed_form(name: str, t: float) -> tuple[float, float]:
    """(alpha_t, beta_t) written out independently of the plugin code."""
    if name.startswith("condot"):
        smin = 0.1 if name == "condot-smin" else 0.0
        return t, 1 - (1 - smin) * t
    if name.startswith("vp"):
        bmin, bmax = (0.5, 10.0) if name == "vp-custom" else (0.1, 20.0)
        s = 1 - t
        alpha = math.exp(-0.5 * (bmin * s + 0.5 * (bmax - bmin) * s * s))
        return alpha, math.sqrt(1 - alpha * alpha)
    smin, smax = (0.02, 50.0) if name == "ve-50" else (0.01, 10.0)
    return 1.0, smin * (smax / smin) ** (1 - t)


def interior(n: int = 9, dtype=F64) -> torch.Tensor:
    return torch.linspace(0.02, 0.98, n, dtype=dtype)


# -- closed forms -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("t", [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999, 1.0])
def test_alpha_beta_closed_form(name, t):
    s = make(name).endpoint(t)
    alpha, beta = closed_form(name, t)
    assert float(s.alpha) == pytest.approx(alpha, rel=1e-12, abs=1e-14)
    assert float(s.beta) == pytest.approx(beta, rel=1e-10, abs=1e-14)


def test_endpoints_named_values():
    cot, cot_s, vp, ve = make("condot"), make("condot-smin"), make("vp"), make("ve")
    # CondOT: pure noise at t = 0, data (+ sigma_min noise) at t = 1
    assert (float(cot.endpoint(0).alpha), float(cot.endpoint(0).beta)) == (0.0, 1.0)
    assert (float(cot.endpoint(1).alpha), float(cot.endpoint(1).beta)) == (1.0, 0.0)
    assert float(cot_s.endpoint(1).beta) == pytest.approx(0.1)
    # VP: alpha_1 = 1, beta_1 = 0; alpha_0 = exp(-(beta_min + beta_max) / 4) since T(1) = (b_min + b_max) / 2
    assert (float(vp.endpoint(1).alpha), float(vp.endpoint(1).beta)) == (1.0, 0.0)
    assert float(vp.endpoint(0).alpha) == pytest.approx(math.exp(-(0.1 + 20) / 4), rel=1e-12)
    # VE: beta runs geometrically from sigma_max to sigma_min; the midpoint is their geometric mean
    assert float(ve.endpoint(0).beta) == pytest.approx(10.0)
    assert float(ve.endpoint(1).beta) == pytest.approx(0.01)
    assert float(ve.endpoint(0.5).beta) == pytest.approx(math.sqrt(0.01 * 10.0))


def test_vp_is_variance_preserving():
    s = make("vp").schedule(torch.linspace(0, 1, 101, dtype=F64), torch.zeros(101, 3, dtype=F64))
    torch.testing.assert_close(s.alpha**2 + s.beta**2, torch.ones_like(s.alpha), rtol=0, atol=1e-14)


def test_priors():
    """The prior is N(0, prior_std^2 I); what the path says it is."""
    eps = torch.randn(5, 2, dtype=F64)
    assert make("condot").prior_std == 1.0
    assert make("vp").prior_std == pytest.approx(math.sqrt(1 - math.exp(-(0.1 + 20) / 2)))
    assert make("ve").prior_std == 10.0
    assert make("ve-50").prior_std == 50.0
    torch.testing.assert_close(make("ve").prior_sample(eps), 10.0 * eps)


# -- derivatives ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_derivatives_match_autograd(name):
    path = make(name)
    t = interior(25).requires_grad_(True)
    alpha, beta, d_alpha, d_beta = path.coefficients(t)
    ga, gb = (torch.autograd.grad(c.sum(), t, retain_graph=True)[0] if c.requires_grad else torch.zeros_like(t)
              for c in (alpha, beta))
    torch.testing.assert_close(d_alpha.detach(), ga, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(d_beta.detach(), gb, rtol=1e-10, atol=1e-12)


def test_vp_derivatives_closed_form():
    """d alpha/dt = alpha b(1 - t) / 2 with b(s) = b_min + s (b_max - b_min); d beta/dt = -alpha d alpha / beta."""
    path = make("vp")
    for t in (0.0, 0.3, 0.9):
        s = path.endpoint(t)
        b = 0.1 + (1 - t) * (20 - 0.1)
        assert float(s.d_alpha) == pytest.approx(float(s.alpha) * b / 2, rel=1e-12)
        assert float(s.d_beta) == pytest.approx(-float(s.alpha * s.d_alpha / s.beta), rel=1e-12)
    assert float(path.endpoint(1.0).d_beta) == -math.inf


def test_ve_derivative_closed_form():
    s = make("ve").endpoint(0.4)
    assert float(s.d_alpha) == 0.0
    assert float(s.d_beta) == pytest.approx(-math.log(10.0 / 0.01) * float(s.beta), rel=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_determinant_positive_on_interior(name):
    """D = beta d_alpha - alpha d_beta > 0 on (0, 1): the velocity <-> (data, noise) map is invertible."""
    t = torch.linspace(1e-4, 1 - 1e-4, 1001, dtype=F64)
    s = make(name).schedule(t, torch.zeros(t.shape[0], 1, dtype=F64))
    assert bool((s.determinant > 0).all())
    assert bool(torch.isfinite(s.determinant).all())


# -- conditional velocity and score ----------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(2,), (3, 4, 4)])
def test_conditional_velocity_is_time_derivative(name, shape):
    """u_t(x | z) = d/dt (alpha_t z + beta_t eps), per sample, for vectors and images."""
    path = make(name)
    g = torch.Generator().manual_seed(1)
    n = 7
    z, eps = torch.randn(n, *shape, generator=g, dtype=F64), torch.randn(n, *shape, generator=g, dtype=F64)
    t = torch.rand(n, generator=g, dtype=F64) * 0.96 + 0.02
    x, dxdt = torch.func.jvp(lambda tt: path.sample(z, tt, eps).x, (t,), (torch.ones_like(t),))
    u = path.conditional_velocity(x, z, t)
    assert u.shape == x.shape == (n, *shape) and u.dtype == F64
    torch.testing.assert_close(u, dxdt, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(2,), (3, 4, 4)])
def test_conditional_score_is_grad_log_prob(name, shape):
    path = make(name)
    g = torch.Generator().manual_seed(2)
    n = 6
    z = torch.randn(n, *shape, generator=g, dtype=F64)
    t = torch.rand(n, generator=g, dtype=F64) * 0.96 + 0.02
    x = (path.sample(z, t, torch.randn(n, *shape, generator=g, dtype=F64)).x).requires_grad_(True)
    logp = path.conditional_log_prob(x, z, t)
    (grad,) = torch.autograd.grad(logp.sum(), x)
    torch.testing.assert_close(path.conditional_score(x.detach(), z, t), grad, rtol=1e-10, atol=1e-10)
    # and the log density itself is the Gaussian N(alpha z, beta^2 I)
    s = path.schedule(t, z)
    ref = torch.distributions.Normal(s.alpha * z, s.beta.expand_as(z)).log_prob(x.detach()).flatten(1).sum(1)
    torch.testing.assert_close(logp.detach(), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_sample_broadcasts_per_sample_time(name):
    """Image batches [N, C, H, W] with a different t per sample: x_i = alpha(t_i) z_i + beta(t_i) eps_i."""
    path = make(name)
    g = torch.Generator().manual_seed(3)
    z, eps = torch.randn(5, 3, 8, 8, generator=g, dtype=F64), torch.randn(5, 3, 8, 8, generator=g, dtype=F64)
    t = torch.tensor([0.0, 0.2, 0.5, 0.8, 0.97], dtype=F64)
    ps = path.sample(z, t, eps)
    assert ps.schedule.alpha.shape == (5, 1, 1, 1) and ps.x.dtype == F64
    for i in range(5):
        a, b = closed_form(name, float(t[i]))
        torch.testing.assert_close(ps.x[i], a * z[i] + b * eps[i], rtol=1e-12, atol=1e-12)
    # float32 in, float32 out
    assert path.sample(z.float(), t.float(), eps.float()).x.dtype == torch.float32


# -- DDPM ----------------------------------------------------------------------------------------------------
def test_vp_matches_discrete_ddpm():
    """Ho et al.'s chain: 1000 linear betas 1e-4..0.02; step i (0-based) is diffusion time (i + 1) / 1000, i.e.
    fmcore time t = 1 - (i + 1) / 1000, where sqrt(alpha_bar_i) ~ alpha_t and sqrt(1 - alpha_bar_i) ~ beta_t."""
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=F64)
    alpha_bar = torch.cumprod(1 - betas, 0)
    t = 1 - torch.arange(1, 1001, dtype=F64) / 1000
    s = make("vp").schedule(t, torch.zeros(1000, 1, dtype=F64))
    assert float((s.alpha.flatten() - alpha_bar.sqrt()).abs().max()) < 2e-3
    assert float((s.beta.flatten() - (1 - alpha_bar).sqrt()).abs().max()) < 2e-3


# -- options and singular ends -------------------------------------------------------------------------------
def test_option_validation():
    with pytest.raises(OptionValueError, match="beta_max"):
        VPOptions(beta_min=5.0, beta_max=1.0)
    with pytest.raises(OptionValueError, match="beta_min"):
        VPOptions(beta_min=0.0)
    with pytest.raises(OptionValueError, match="sigma_max"):
        VEOptions(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(OptionValueError, match="sigma_min"):
        CondOTOptions(sigma_min=1.0)


V, S, N, D = Prediction.VELOCITY, Prediction.SCORE, Prediction.NOISE, Prediction.DATA


@pytest.mark.parametrize(
    ("name", "pred", "ends"),
    [
        ("condot", V, set()), ("condot", S, {"t=0", "t=1"}), ("condot", N, {"t=0", "t=1"}), ("condot", D, {"t=1"}),
        ("condot-smin", V, set()), ("condot-smin", S, {"t=0"}), ("condot-smin", D, set()),
        ("vp", V, {"t=1"}), ("vp", S, {"t=1"}), ("vp", N, {"t=1"}),
        ("ve", V, set()), ("ve", S, set()), ("ve", N, set()), ("ve", D, set()),
    ],
)
def test_singular_ends_and_time_range(name, pred, ends):
    path = make(name)
    reasons = singular_ends(path, pred)
    assert {r.split(":")[0] for r in reasons} == ends
    lo, hi = safe_time_range(path, pred, 1e-3)
    assert lo == (1e-3 if "t=0" in ends else 0.0)
    assert hi == (1 - 1e-3 if "t=1" in ends else 1.0)
    # inside the safe range every coefficient and the determinant are finite and D > 0
    t = torch.linspace(lo, hi, 101, dtype=torch.float32)
    s = path.schedule(t, torch.zeros(101, 2))
    for c in (s.alpha, s.beta, s.d_alpha, s.d_beta, s.determinant):
        assert bool(torch.isfinite(c).all())
    assert bool((s.determinant > 0).all())


# -- the lean hot path: only what the objective needs, exactly what the full schedule gives -----------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", list(Prediction))
def test_lean_target_equals_full_schedule_target(name, kind):
    """``conditional_target`` (signal_noise + rates, floats where constant) is bit-for-bit the target built
    from the full schedule, and ``sample`` gives the same x, for float32 images and float64 vectors."""
    from fmcore.core.prediction import conditional_target, from_data_noise

    path = make(name)
    for shape, dtype in (((3, 4, 4), torch.float32), ((2,), F64)):
        g = torch.Generator().manual_seed(5)
        z, eps = torch.randn(16, *shape, generator=g, dtype=dtype), torch.randn(16, *shape, generator=g, dtype=dtype)
        t = (0.02 + 0.96 * torch.rand(16, generator=g)).to(dtype)
        ps = path.sample(z, t, eps)
        s = path.schedule(t, z)
        assert torch.equal(ps.x, s.alpha * z + s.beta * eps)
        assert torch.equal(conditional_target(ps, path, kind), from_data_noise(z, eps, kind, s))
        assert torch.equal(ps.schedule.beta, s.beta), "the full schedule is still there when asked for"


def test_constant_coefficients_are_python_floats():
    t = torch.rand(8, 1)
    assert make("condot").rates(t, *make("condot").signal_noise(t)) == (1.0, -1.0)
    assert make("condot-smin").rates(t, t, 1 - 0.9 * t)[1] == pytest.approx(-0.9)
    ve = make("ve")
    alpha, beta = ve.signal_noise(t)
    assert alpha == 1.0 and ve.rates(t, alpha, beta)[0] == 0.0


def test_path_kit_catches_rates_that_disagree_with_coefficients():
    from fmcore.testing import check_path_lean_coefficients

    class WrongRates(CondOTPath):
        def rates(self, t, alpha, beta):
            return 1.0, -0.5

    check_path_lean_coefficients(make("condot"))
    with pytest.raises(AssertionError, match="rates d_beta differs from coefficients"):
        check_path_lean_coefficients(WrongRates(CondOTOptions()))


def test_combine_skips_only_exact_operations():
    from fmcore.core.tensors import combine

    x, y, a = torch.randn(5, 3), torch.randn(5, 3), torch.rand(5, 1)
    assert torch.equal(combine(1.0, x, -1.0, y), torch.ones(5, 1) * x + torch.full((5, 1), -1.0) * y)
    assert torch.equal(combine(0.0, x, a, y), torch.zeros(5, 1) * x + a * y)
    assert torch.equal(combine(a, x, 2.5, y), a * x + 2.5 * y)
