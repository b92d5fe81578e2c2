"""dopri5 and rk4 on exact (oracle) fields: accuracy against tolerance, per-sample step control (batch
independence), NFE accounting, the step budget, time ranges; VP finite at t = 1 (Heun second order over [0, 1])."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fmcore_paths.condot import CondOTOptions, CondOTPath
from fmcore_paths.ve import VEOptions, VEPath
from fmcore_paths.vp import VPOptions, VPPath
from fmcore_samplers.dopri5 import Dopri5, Dopri5Options
from fmcore_samplers.heun import Heun, HeunOptions
from fmcore_samplers.rk4 import RK4

from fmcore import Field, FmError, Prediction, SamplerOptions, reverse_diffusion_sq
from fmcore.core.noise import BatchNoise
from fmcore.core.oracle import GaussianMixture, Oracle, oracle_field
from fmcore.core.prediction import convert
from fmcore.run.sampling import generate

PATHS = {"condot": CondOTPath(CondOTOptions()), "vp": VPPath(VPOptions()), "ve": VEPath(VEOptions())}
ANGLES = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
RING = GaussianMixture.isotropic(4.0 * torch.stack([ANGLES.cos(), ANGLES.sin()], dim=1), 0.5)



def start(path, n: int = 64, seed: int = 0) -> tuple[torch.Tensor, BatchNoise]:
    noise = BatchNoise(seed, 0, n, (2,), "cpu", torch.float64)
    return path.prior_sample(noise.randn()), noise


def dopri(tol: float, **kw) -> Dopri5:
    return Dopri5(Dopri5Options(rtol=tol, atol=tol, **kw))


@pytest.mark.parametrize("name", PATHS)
def test_dopri5_error_follows_tolerance(name):
    """Endpoint error against a 1e-11 reference falls with the tolerance and is below 1e-6 at 1e-8."""
    f = oracle_field(RING, PATHS[name])
    x0, noise = start(PATHS[name])
    ref = dopri(1e-11).run(f, x0, noise).x
    errs = [float((dopri(tol).run(f, x0, noise).x - ref).norm(dim=1).max()) for tol in (1e-4, 1e-6, 1e-8)]
    assert errs[0] > errs[1] > errs[2], errs
    assert errs[2] < 1e-6, errs


def test_per_sample_results_do_not_depend_on_the_batch():
    """Each sample has its own time and step size: batch sizes 1, 7 and 512 give the same samples."""
    path = PATHS["vp"]
    f = oracle_field(RING, path)
    x0, noise = start(path, 512, seed=5)
    sampler = dopri(1e-6)
    full = sampler.run(f, x0, noise)
    seven = sampler.run(f, x0[:7], noise)
    one = sampler.run(f, x0[3:4], noise)
    torch.testing.assert_close(seven.x, full.x[:7], rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(one.x, full.x[3:4], rtol=1e-13, atol=1e-13)
    assert full.nfe_max > full.nfe_mean > 0  # samples took different numbers of steps
    assert one.nfe_max <= full.nfe_max


def test_nfe_counts_the_evaluations_actually_made():
    calls = []
    path = PATHS["condot"]

    def net(x, t, cond=None):
        calls.append(x.shape[0])
        return Oracle(RING, path)(x, t)

    f = Field(net, path)
    x0, noise = start(path, 40)
    result = dopri(1e-6).run(f, x0, noise)
    assert result.nfe_mean == pytest.approx(sum(calls) / 40)  # rows evaluated, per sample
    assert max(calls) == 40 and min(calls) < 40  # finished samples are not evaluated
    calls.clear()
    assert RK4(SamplerOptions(steps=5)).run(f, x0, noise).nfe == 20 == len(calls)


def test_generate_reports_mean_and_max():
    f = oracle_field(RING, PATHS["condot"])
    result = generate(f, dopri(1e-5), 200, (2,), batch_size=64)
    direct = [dopri(1e-5).run(f, *start_at(f, s, min(64, 200 - s))) for s in range(0, 200, 64)]
    assert result.nfe_max == max(r.nfe_max for r in direct)
    assert result.nfe_mean == pytest.approx(sum(r.nfe_mean * r.x.shape[0] for r in direct) / 200)


def start_at(f, s: int, count: int):
    noise = BatchNoise(0, s, count, (2,), "cpu")
    return f.path.prior_sample(noise.randn()), noise


def test_step_budget_is_a_clear_error():
    f = oracle_field(RING, PATHS["vp"])
    x0, noise = start(PATHS["vp"], 8)
    with pytest.raises(FmError, match=r"step budget of 5 steps.*Raise max_steps, loosen rtol/atol"):
        dopri(1e-10, max_steps=5).run(f, x0, noise)


class Recording(Field):
    """A field that records the times it is evaluated at (before clamping)."""

    def __init__(self, inner: Field):
        super().__init__(inner.network, inner.path, inner.prediction, inner.time_range)
        self.times: list[torch.Tensor] = []

    def velocity(self, x, t):
        self.times.append(torch.as_tensor(t).detach().clone())
        return super().velocity(x, t)


def test_never_evaluates_outside_the_time_range():
    inner = oracle_field(RING, PATHS["condot"])
    f = Recording(Field(inner.network, inner.path, inner.prediction, (0.2, 0.7)))
    x0, noise = start(PATHS["condot"], 16)
    dopri(1e-7).run(f, x0, noise)
    times = torch.cat([t.reshape(-1) for t in f.times])
    assert float(times.min()) >= 0.2 and float(times.max()) <= 0.7
    assert float(times.max()) == 0.7  # and reaches the end exactly


def test_dopri5_trajectory_is_recorded_on_the_grid_without_changing_samples():
    f = oracle_field(RING, PATHS["condot"])
    x0, noise = start(PATHS["condot"], 16)
    plain = dopri(1e-8, steps=10).run(f, x0, noise)
    traced = dopri(1e-8, steps=10).run(f, x0, noise, trajectory=True)
    assert torch.equal(plain.x, traced.x)
    assert traced.trajectory.shape == (11, 16, 2)
    torch.testing.assert_close(traced.trajectory[-1], plain.x)
    torch.testing.assert_close(traced.trajectory[0], x0)
    mid = Dopri5(Dopri5Options(rtol=1e-10, atol=1e-10)).step(f, x0, torch.tensor(0.0), torch.tensor(0.5), noise)
    torch.testing.assert_close(traced.trajectory[5], mid, rtol=0, atol=1e-5)  # Hermite interpolation


def errors_against(ref, sampler_of, steps_list, f, x0, noise):
    return [float((sampler_of(n).run(f, x0, noise).x - ref).norm(dim=1).max()) for n in steps_list]


def order(steps_list, errs) -> float:
    return -float(np.polyfit(np.log(steps_list), np.log(errs), 1)[0])


def test_rk4_is_fourth_order():
    f = oracle_field(RING, PATHS["condot"])
    x0, noise = start(PATHS["condot"], 32)
    ref = dopri(1e-12).run(f, x0, noise).x
    steps = [40, 80, 160]
    errs = errors_against(ref, lambda n: RK4(SamplerOptions(steps=n)), steps, f, x0, noise)
    assert abs(order(steps, errs) - 4) < 0.4, errs


def test_vp_is_finite_at_t1_and_heun_is_second_order_over_0_1():
    path = PATHS["vp"]
    s = path.endpoint(1.0)
    assert float(s.beta) == 0.0 and not math.isfinite(float(s.d_beta))
    assert float(s.beta_d_beta) == pytest.approx(-float(s.alpha * s.d_alpha))
    assert float(reverse_diffusion_sq(s)) == pytest.approx(0.1)  # g(1)^2 = b(s = 0) = beta_min
    f = oracle_field(RING, path)
    assert f.time_range == (0.0, 1.0)
    x = RING.sample(16, torch.Generator().manual_seed(0))
    one = torch.ones(16, dtype=torch.float64)
    v, score = f.velocity(x, one), f.score(x, one)
    assert torch.isfinite(v).all() and torch.isfinite(score).all()
    torch.testing.assert_close(score, Oracle(RING, path, Prediction.SCORE)(x, one))
    sched = path.schedule(one, x)
    torch.testing.assert_close(convert(score, Prediction.SCORE, Prediction.VELOCITY, x, sched), v)
    torch.testing.assert_close(convert(v, Prediction.VELOCITY, Prediction.DATA, x, sched),
                               Oracle(RING, path, Prediction.DATA)(x, one))
    x0, noise = start(path, 64)
    ref = dopri(1e-11).run(f, x0, noise).x
    steps = [25, 50, 100, 200]
    errs = errors_against(ref, lambda n: Heun(HeunOptions(steps=n)), steps, f, x0, noise)
    assert all(math.isfinite(e) for e in errs)
    assert abs(order(steps, errs) - 2) < 0.2, errs


def test_dopri5_needs_fewer_evaluations_than_heun_below_1e_4():
    """At an endpoint error below 1e-4 (max over samples), dopri5 is cheaper than Heun (bench/adaptive.py)."""
    f = oracle_field(RING, PATHS["condot"])
    x0, noise = start(PATHS["condot"], 64)
    ref = dopri(1e-12).run(f, x0, noise).x
    adaptive = dopri(1e-7).run(f, x0, noise)
    err_dopri = float((adaptive.x - ref).norm(dim=1).max())
    assert err_dopri < 1e-4
    heun_steps = math.ceil(adaptive.nfe_mean / 2)
    heun = Heun(HeunOptions(steps=heun_steps)).run(f, x0, noise).x
    assert float((heun - ref).norm(dim=1).max()) > err_dopri  # Heun at the same NFE is less accurate
