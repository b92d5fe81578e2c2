"""Few-step samplers (ddim, dpm_solver_pp, unipc, edm), the karras/logsnr/times grids, the inverse schedule and the
path transform, on exact (oracle) float64 fields (docs/fast-sampling.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fmcore_paths.condot import CondOTOptions, CondOTPath
from fmcore_paths.ve import VEOptions, VEPath
from fmcore_paths.vp import VPOptions, VPPath
from fmcore_samplers.ddim import DDIM, DDIMOptions
from fmcore_samplers.dpm_solver_pp import DPMSolverOptions, DPMSolverPP
from fmcore_samplers.edm import EDM, EDMOptions
from fmcore_samplers.heun import Heun, HeunOptions
from fmcore_samplers.unipc import UniPC, UniPCOptions

from fmcore import Field, FmError, GaussianPath, Prediction, choice
from fmcore.core.noise import BatchNoise
from fmcore.core.options import OptionValueError
from fmcore.core.oracle import GaussianMixture, Oracle, oracle_field, reference_flow
from fmcore.core.transform import transform_field
from fmcore.run.metrics import wasserstein2
from fmcore.run.sampling import generate
from fmcore.testing.samplers import CountingNetwork
from tests.conftest import oracle_recipe


class Cosine(GaussianPath):
    """alpha = sin(pi t / 2), beta = sin(pi (1 - t) / 2): no closed-form inverse here, so the bisection is used."""

    def coefficients(self, t):
        h = math.pi / 2
        return torch.sin(h * t), torch.sin(h * (1 - t)), h * torch.sin(h * (1 - t)), -h * torch.sin(h * t)


PATHS = {"condot": CondOTPath(CondOTOptions()), "vp": VPPath(VPOptions()), "ve": VEPath(VEOptions()),
         "cosine": Cosine()}
MIX = GaussianMixture.isotropic(torch.tensor([[3.0, 0.0], [-1.5, 2.6], [-1.5, -2.6], [0.0, 0.0]]), 0.5,
                                torch.tensor([0.3, 0.3, 0.2, 0.2]))

FEW_STEP = {
    "ddim": lambda steps, grid: DDIM(DDIMOptions(steps=steps, grid=grid)),
    "dpm_solver_pp 2M": lambda steps, grid: DPMSolverPP(DPMSolverOptions(steps=steps, order=2, grid=grid)),
    "dpm_solver_pp 3M": lambda steps, grid: DPMSolverPP(DPMSolverOptions(steps=steps, order=3, grid=grid)),
    "dpm_solver_pp 3M time": lambda steps, grid: DPMSolverPP(DPMSolverOptions(steps=steps, order=3, grid=grid,
                                                                              interpolation="time")),
    "unipc 1": lambda steps, grid: UniPC(UniPCOptions(steps=steps, order=1, grid=grid)),
    "unipc 2": lambda steps, grid: UniPC(UniPCOptions(steps=steps, order=2, grid=grid)),
    "unipc 3 time": lambda steps, grid: UniPC(UniPCOptions(steps=steps, order=3, grid=grid, interpolation="time")),
}
#: expected convergence orders (UniPC: predictor order + 1 from the corrector)
ORDERS = {"ddim": 1, "dpm_solver_pp 2M": 2, "dpm_solver_pp 3M": 3, "dpm_solver_pp 3M time": 3, "unipc 1": 2,
          "unipc 2": 3, "unipc 3 time": 4}


def exact_problem(name: str, n: int = 64):
    """The mixture's data-prediction oracle on [0, 1] (both ends, lambda = -inf / +inf where alpha or beta is 0),
    exact draws of p_0, and the reference endpoints."""
    path = PATHS[name]
    field = oracle_field(MIX, path, Prediction.DATA, 0.0)
    x0 = MIX.at(path, 0.0).sample(n, torch.Generator().manual_seed(0))
    return field, x0, BatchNoise(0, 0, n, (2,), "cpu", torch.float64), reference_flow(MIX, path, x0, steps=500)


def endpoint_error(sampler, field, x0, noise, ref) -> float:
    return float((sampler.run(field, x0, noise).x - ref).norm(dim=1).mean())


# ----------------------------------------------------------------------------------------------- inverse schedule

@pytest.mark.parametrize("name", PATHS)
def test_inverse_schedule_round_trips(name):
    path = PATHS[name]
    t = torch.linspace(0.02, 0.98, 49, dtype=torch.float64)
    lam = path.log_snr(t)
    torch.testing.assert_close(path.t_from_log_snr(lam), t, rtol=0, atol=1e-10)
    torch.testing.assert_close(path.t_from_sigma(torch.exp(-lam)), t, rtol=0, atol=1e-10)
    # a closed form agrees with the default bisection
    torch.testing.assert_close(GaussianPath.t_from_log_snr(path, lam), t, rtol=0, atol=1e-12)
    # beyond the path's range the time is clamped to its ends
    assert float(path.t_from_log_snr(torch.tensor([-1e4]))[0]) == pytest.approx(0.0, abs=1e-12)
    assert float(path.t_from_log_snr(torch.tensor([1e4]))[0]) == pytest.approx(1.0, abs=1e-12)


def test_log_snr_is_infinite_where_alpha_or_beta_is_zero():
    assert float(PATHS["condot"].log_snr(torch.tensor([0.0]))[0]) == -math.inf
    assert float(PATHS["vp"].log_snr(torch.tensor([1.0]))[0]) == math.inf
    assert float(PATHS["condot"].t_from_log_snr(torch.tensor([-math.inf]))[0]) == 0.0
    assert float(PATHS["condot"].t_from_sigma(torch.tensor([0.0]))[0]) == 1.0


# ----------------------------------------------------------------------------------------------------------- grids

def test_karras_grid_is_the_edm_schedule_with_exact_ends():
    path, rho = PATHS["vp"], 7.0
    times = choice("grid", "karras").create().times(12, (0.0, 1.0 - 1e-3), path)
    assert float(times[0]) == 0.0 and float(times[-1]) == 1.0 - 1e-3 and bool((times.diff() > 0).all())
    root = torch.exp(-path.log_snr(times) / rho)  # sigma^(1/rho): linear in the step index between the ends
    torch.testing.assert_close(root.diff()[1:-1], root.diff()[1:-1].mean().expand(10), rtol=1e-8, atol=0)
    # CondOT: sigma is infinite at t = 0 and 0 at t = 1; EDM's 80 and 0.002 are used inside, the ends stay exact
    times = choice("grid", "karras", rho=rho).create().times(8, (0.0, 1.0), PATHS["condot"])
    sigma = torch.exp(-PATHS["condot"].log_snr(times))
    assert float(times[0]) == 0.0 and float(times[-1]) == 1.0
    assert float(sigma[-2]) == pytest.approx((80 ** (1 / 7) + 7 / 8 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7)


def test_logsnr_grid_is_uniform_in_log_snr():
    path = PATHS["vp"]
    times = choice("grid", "logsnr", clip=10.0).create().times(16, (0.0, 1.0 - 1e-3), path)
    lam = path.log_snr(times)
    torch.testing.assert_close(lam.diff(), lam.diff().mean().expand(16), rtol=1e-9, atol=0)
    clipped = choice("grid", "logsnr").create().times(10, (0.0, 1.0), PATHS["condot"])
    assert float(clipped[0]) == 0.0 and float(clipped[-1]) == 1.0
    assert PATHS["condot"].log_snr(clipped[1:-1]).abs().max() < 3.0


def test_times_grid_validates():
    grid = choice("grid", "times", times=[0.0, 0.3, 0.7, 1.0]).create()
    torch.testing.assert_close(grid.times(3, (0.0, 1.0), PATHS["condot"]),
                               torch.tensor([0.0, 0.3, 0.7, 1.0], dtype=torch.float64))
    with pytest.raises(FmError, match="set steps = 3"):
        grid.times(5, (0.0, 1.0), PATHS["condot"])
    with pytest.raises(FmError, match="outside the field's time range"):
        grid.times(3, (0.0, 0.999), PATHS["vp"])
    from fmcore_samplers.grids import ExplicitGridOptions
    with pytest.raises(OptionValueError, match="increasing"):
        ExplicitGridOptions(times=[0.0, 0.5, 0.4, 1.0])


# ------------------------------------------------------------------------------------------------ exact identities

def test_dpm_solver_order_1_is_ddim_and_ddim_on_condot_is_euler():
    field, x0, noise, _ = exact_problem("vp")
    grid = choice("grid", "uniform")
    assert torch.equal(DPMSolverPP(DPMSolverOptions(steps=9, order=1, grid=grid)).run(field, x0, noise).x,
                       DDIM(DDIMOptions(steps=9, grid=grid)).run(field, x0, noise).x)
    # on CondOT, DDIM's step (beta_s / beta_t) x + (s - t) / (1 - t) D is Euler's x + (s - t) (D - x) / (1 - t)
    from fmcore_samplers.euler import Euler

    from fmcore import SamplerOptions
    f = oracle_field(MIX, PATHS["condot"], Prediction.VELOCITY)
    x = torch.randn(16, 2, dtype=torch.float64)
    torch.testing.assert_close(DDIM(DDIMOptions(steps=7, grid=grid)).run(f, x, noise).x,
                               Euler(SamplerOptions(steps=7)).run(f, x, noise).x, rtol=1e-12, atol=1e-12)


def test_ends_are_exact_and_finite():
    """From CondOT's t = 0 (alpha = 0, lambda = -inf) and into VP's and CondOT's t = 1 (beta = 0, lambda = +inf):
    finite, and close to the reference already at 12 steps."""
    for name in ("condot", "vp"):
        field, x0, noise, ref = exact_problem(name)
        assert field.time_range == (0.0, 1.0)
        for label, make in FEW_STEP.items():
            x = make(12, choice("grid", "logsnr")).run(field, x0, noise).x
            assert torch.isfinite(x).all(), (name, label)
            assert float((x - ref).norm(dim=1).mean()) < 0.35, (name, label)  # measured 0.04 to 0.29


@pytest.mark.parametrize("name", ["condot", "vp"])
def test_convergence_orders(name):
    """Log-log slopes over 40 to 160 steps uniform in log-SNR on [0.01, 0.99] (finite lambda at both ends, so the
    grid is exactly uniform in lambda); UniPC's order is its predictor's + 1."""
    path, span = PATHS[name], (0.01, 0.99)
    field = Field(Oracle(MIX, path, Prediction.DATA), path, Prediction.DATA, span)
    x0 = MIX.at(path, span[0]).sample(64, torch.Generator().manual_seed(0))
    noise, ref = BatchNoise(0, 0, 64, (2,), "cpu", torch.float64), reference_flow(MIX, path, x0, span, steps=500)
    steps = [40, 80, 160]
    for label, make in FEW_STEP.items():
        errs = [endpoint_error(make(k, choice("grid", "logsnr", clip=10.0)), field, x0, noise, ref) for k in steps]
        order = -np.polyfit(np.log(steps), np.log(errs), 1)[0]
        assert abs(order - ORDERS[label]) < 0.45, (label, errs, order)  # measured within 0.42


# ---------------------------------------------------------------------------------------- randomness, NFE, guidance

@pytest.mark.parametrize("make", [lambda: DDIM(DDIMOptions(steps=10, eta=1.0)),
                                  lambda: EDM(EDMOptions(steps=6, s_churn=10.0)),
                                  lambda: UniPC(UniPCOptions(steps=8))],
                         ids=["ddim eta 1", "edm churn", "unipc"])
def test_seed_reproducible_whatever_the_batch_split(make):
    f = oracle_field(MIX, PATHS["vp"])
    a = generate(f, make(), 150, (2,), seed=7, batch_size=64, trajectory=5)
    b = generate(f, make(), 150, (2,), seed=7, batch_size=4096, trajectory=5)
    assert torch.equal(a.x, b.x) and torch.equal(a.trajectory, b.trajectory)
    assert a.trajectory.shape[1:] == (5, 2) and torch.equal(a.trajectory[-1], a.x[:5])


def test_nfe_is_the_number_of_network_evaluations():
    net = CountingNetwork(Oracle(MIX, PATHS["condot"]))
    f = Field(net, PATHS["condot"])
    x0 = torch.randn(8, 2)
    for sampler in (DDIM(DDIMOptions(steps=7, eta=0.5)), DPMSolverPP(DPMSolverOptions(steps=7)),
                    UniPC(UniPCOptions(steps=7)), EDM(EDMOptions(steps=5, s_churn=5.0)),
                    EDM(EDMOptions(steps=5, euler_last=True))):
        net.calls = 0
        assert sampler.run(f, x0, BatchNoise(0, 0, 8, (2,), "cpu")).nfe == net.calls
    assert UniPC(UniPCOptions(steps=7)).nfe(7) == 7 and EDM(EDMOptions(steps=5)).nfe(5) == 10


def test_edm_without_churn_is_heun_and_with_churn_keeps_the_marginal():
    f = oracle_field(MIX, PATHS["vp"])
    lo, hi = f.time_range
    n = 1000
    x0 = MIX.at(PATHS["vp"], lo).sample(n, torch.Generator().manual_seed(0)).float()
    noise = BatchNoise(0, 0, n, (2,), "cpu")
    karras = choice("grid", "karras")
    assert torch.equal(EDM(EDMOptions(steps=10, grid=karras)).run(f, x0, noise).x,
                       Heun(HeunOptions(steps=10, grid=karras)).run(f, x0, noise).x)
    x = EDM(EDMOptions(steps=20, s_churn=40.0, s_tmin=0.05, s_tmax=50.0)).run(f, x0, noise).x
    exact = MIX.at(PATHS["vp"], hi).sample(n, torch.Generator().manual_seed(10))
    assert wasserstein2(x, exact) < 0.6  # the calibrated bound of tests/test_samplers.py
    assert abs(float(x.double().std() / exact.std()) - 1) < 0.06


# ------------------------------------------------------------------------------------------------------- transform

@pytest.mark.parametrize("target", ["vp", "cosine"])
def test_transform_keeps_the_endpoints(target):
    """A CondOT exact field sampled along VP and the cosine path ends where the CondOT flow does (x_B = s x_A at
    matched log-SNR), within 1e-6, with a fine solver on each side."""
    a_field = oracle_field(MIX, PATHS["condot"], Prediction.VELOCITY)
    b_field = transform_field(a_field, PATHS[target])
    lo, hi = b_field.time_range
    r, scale = b_field.network.matched(torch.tensor([lo, hi], dtype=torch.float64))
    x_a0 = MIX.at(PATHS["condot"], float(r[0])).sample(64, torch.Generator().manual_seed(0))
    noise = BatchNoise(0, 0, 64, (2,), "cpu", torch.float64)
    fine = UniPC(UniPCOptions(steps=1000, order=3, interpolation="time", grid=choice("grid", "uniform")))
    x_b = fine.run(b_field, float(scale[0]) * x_a0, noise).x  # measured max error 2e-7
    x_a = reference_flow(MIX, PATHS["condot"], x_a0, (float(r[0]), float(r[1])), steps=1000)
    assert float((x_b / float(scale[1]) - x_a).norm(dim=1).max()) < 1e-6


def test_transform_predictions_are_invariant():
    """Data and noise predictions of the transformed field are A's at (x / s, r(t))."""
    a_field = oracle_field(MIX, PATHS["vp"], Prediction.NOISE)
    b_field = transform_field(a_field, PATHS["condot"])
    t = torch.full((32,), 0.4, dtype=torch.float64)
    x = torch.randn(32, 2, dtype=torch.float64)
    r, scale = b_field.network.matched(t)
    torch.testing.assert_close(b_field.predict(x, t, Prediction.NOISE),
                               a_field.predict(x / scale[:, None], r, Prediction.NOISE), rtol=1e-9, atol=1e-9)
    # the range is the image of A's: VP's alpha_0 > 0 maps to a CondOT time > 0
    assert b_field.time_range[0] == pytest.approx(float(PATHS["condot"].t_from_log_snr(
        PATHS["vp"].log_snr(torch.tensor([0.0])))[0]))


ORACLE = oracle_recipe("unipc", 40)


def test_fm_sample_along_another_path(fm, write_recipe, tmp_path):
    """`fm sample RUN --path vp` on an exact CondOT run: the same flow, read along VP; it ends at VP's 1 - t_eps,
    i.e. CondOT's 0.99 (matched log-SNR), and starts at CondOT's 0.0065: close to the plain samples."""
    assert fm("oracle", write_recipe(ORACLE), "--run-dir", tmp_path / "run")[0] == 0
    common = ("--n", 128, "--seed", 1, "--device", "cpu")
    code, out, err = fm("sample", tmp_path / "run", "--path", "vp", "--out", tmp_path / "vp.npy", *common)
    assert code == 0, err
    assert "along path vp" in out and "(40 network evaluations each" in out
    assert fm("sample", tmp_path / "run", "--out", tmp_path / "ot.npy", *common)[0] == 0
    vp, ot = np.load(tmp_path / "vp.npy"), np.load(tmp_path / "ot.npy")
    assert np.isfinite(vp).all() and np.linalg.norm(vp - ot, axis=1).mean() < 0.01  # measured 0.0012
    code, _, err = fm("sample", tmp_path / "run", "--path", "nonesuch", "--out", tmp_path / "x.npy", *common)
    assert code == 2 and "nonesuch" in err
