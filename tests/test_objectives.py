"""CFM, DSM and DDPM losses against hand-written formulas; time ranges, t_eps, time sampling, stable targets."""

from __future__ import annotations

import math

import pytest
import torch
from fmcore_objectives.objectives import CFM, DDPM, DSM, DSMOptions, ScoreOptions
from fmcore_objectives.timedensities import LogitNormal

from fmcore import Choice, UniformTimes
from fmcore.core.dataset import Batch
from fmcore.core.objective import ObjectiveOptions, posterior_data_noise
from fmcore.core.options import OptionValueError
from fmcore.core.prediction import Prediction, from_data_noise
from tests.tables import PATHS

OBJECTIVES = {
    "cfm": lambda **kw: CFM(ObjectiveOptions(**{"t_eps": 1e-3, **kw})),
    "dsm": lambda **kw: DSM(DSMOptions(**kw)),
    "ddpm": lambda **kw: DDPM(ScoreOptions(**kw)),
}


class Spy(torch.nn.Module):
    """A fixed, non-trivial 'network' f(x, t) = a x + b t that records the times it is called at."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(0.3))
        self.b = torch.nn.Parameter(torch.tensor(-0.7))
        self.times: list[torch.Tensor] = []

    def forward(self, x, t, cond=None):
        self.times.append(t.detach().clone())
        return self.a * x + self.b * t.view(-1, *([1] * (x.ndim - 1)))


def replay(path, lo_hi, z, seed):
    """Redraw what ``RegressionObjective.loss`` draws after ``torch.manual_seed(seed)``: uniform t, then eps."""
    torch.manual_seed(seed)
    lo, hi = lo_hi
    t = lo + (hi - lo) * torch.rand(z.shape[0])
    eps = torch.randn_like(z)
    s = path.schedule(t, z)
    return t, eps, s.alpha, s.beta, s.d_alpha, s.d_beta


@pytest.mark.parametrize("path_name", list(PATHS))
@pytest.mark.parametrize("shape", [(2,), (1, 4, 4)])
def test_losses_match_hand_written_formulas(path_name, shape):
    path = PATHS[path_name]()
    z = torch.randn(32, *shape, generator=torch.Generator().manual_seed(5))
    net = Spy()
    cases = [
        # (objective, expected loss from the drawn (t, eps) as a function of the network output f)
        (OBJECTIVES["cfm"](), lambda f, e, a, b, da, db: (f - (da * z + db * e)) ** 2),
        (OBJECTIVES["dsm"](), lambda f, e, a, b, da, db: (b * f + e) ** 2),  # lambda = beta^2
        (OBJECTIVES["dsm"](weighting="none"), lambda f, e, a, b, da, db: (f + e / b) ** 2),
        (OBJECTIVES["ddpm"](), lambda f, e, a, b, da, db: (f - e) ** 2),
    ]
    for objective, formula in cases:
        torch.manual_seed(11)
        loss = objective.loss(net, path, Batch(z))
        t, eps, a, b, da, db = replay(path, objective.time_range(path), z, 11)
        torch.testing.assert_close(net.times[-1], t)
        f = net(a * z + b * eps, t).detach()
        expected = formula(f, eps, a, b, da, db).mean()
        torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)
        # and the loss is differentiable in the weights
        grads = torch.autograd.grad(loss, list(net.parameters()))
        assert all(torch.isfinite(g) for g in grads)


def test_cfm_target_on_condot_is_data_minus_noise():
    """For CondOT with sigma_min = 0 the CFM target is z - eps: an optimal 'network' returning it has loss 0."""
    path, z = PATHS["condot"](), torch.randn(64, 2)
    torch.manual_seed(3)
    _t, eps, *_ = replay(path, (0.0, 1.0), z, 3)

    def oracle(x, t, cond=None):
        return z - eps

    torch.manual_seed(3)
    assert float(CFM(ObjectiveOptions()).loss(oracle, path, Batch(z))) == pytest.approx(0.0, abs=1e-12)


def test_defaults():
    assert DSMOptions().t_eps == 1e-3 and DSMOptions().weighting == "beta2"
    assert ScoreOptions().t_eps == 1e-3
    assert ObjectiveOptions().t_eps == 0.0 and ObjectiveOptions().time_sampling.cls is UniformTimes
    assert (CFM.prediction, DSM.prediction, DDPM.prediction) == (Prediction.VELOCITY, Prediction.SCORE,
                                                                 Prediction.NOISE)
    with pytest.raises(OptionValueError, match="weighting"):
        DSMOptions(weighting="sigma")


@pytest.mark.parametrize(
    ("path_name", "obj", "expected"),
    [
        ("condot", "cfm", (0.0, 1.0)), ("condot", "dsm", (1e-3, 1 - 1e-3)), ("condot", "ddpm", (1e-3, 1 - 1e-3)),
        ("condot-smin", "dsm", (1e-3, 1.0)), ("condot-smin", "cfm", (0.0, 1.0)),
        ("vp", "cfm", (0.0, 1 - 1e-3)), ("vp", "dsm", (0.0, 1 - 1e-3)), ("vp", "ddpm", (0.0, 1 - 1e-3)),
        ("ve", "cfm", (0.0, 1.0)), ("ve", "dsm", (0.0, 1.0)), ("ve", "ddpm", (0.0, 1.0)),
    ],
)
def test_time_range_avoids_singular_ends(path_name, obj, expected):
    """Training never evaluates a target where beta_t = 0 (or alpha_t = 0 for noise/score, or d beta = inf)."""
    path, objective = PATHS[path_name](), OBJECTIVES[obj]()
    assert objective.time_range(path) == pytest.approx(expected)
    assert objective.problems(path) == []
    net = Spy()
    torch.manual_seed(0)
    for _ in range(20):
        loss = objective.loss(net, path, Batch(torch.randn(256, 2)))
        assert math.isfinite(float(loss.detach()))
    t = torch.cat(net.times)
    lo, hi = expected
    assert float(t.min()) >= lo and float(t.max()) <= hi
    s = path.schedule(t, torch.zeros(t.shape[0], 1))
    assert bool((s.beta > 0).all()) and bool(torch.isfinite(s.d_beta).all())


@pytest.mark.parametrize(
    ("path_name", "obj", "fragments"),
    [
        ("condot", "dsm", ["t=0: alpha_0 = 0", "t=1: beta_1 = 0", "set [objective] t_eps > 0"]),
        ("condot", "ddpm", ["t=0: alpha_0 = 0", "t=1: beta_1 = 0"]),
        ("condot-smin", "dsm", ["t=0: alpha_0 = 0"]),
        ("vp", "dsm", ["t=1: beta_1 = 0", "time derivatives are infinite"]),
        ("vp", "cfm", ["t=1: the path's time derivatives are infinite", "set [objective] t_eps > 0"]),
    ],
)
def test_problems_with_zero_t_eps(path_name, obj, fragments):
    problems = OBJECTIVES[obj](t_eps=0.0).problems(PATHS[path_name]())
    text = "; ".join(problems)
    for fragment in fragments:
        assert fragment in text
    assert text.count("set [objective] t_eps") == 1


@pytest.mark.parametrize("obj", list(OBJECTIVES))
def test_zero_t_eps_is_fine_where_nothing_is_singular(obj):
    assert OBJECTIVES[obj](t_eps=0.0).problems(PATHS["ve"]()) == []
    assert OBJECTIVES["cfm"](t_eps=0.0).problems(PATHS["condot"]()) == []


# -- time sampling ---------------------------------------------------------------------------------------
def test_uniform_times():
    g = torch.Generator().manual_seed(0)
    t = UniformTimes().times(100_000, (0.1, 0.9), "cpu", generator=g)
    assert float(t.min()) >= 0.1 and float(t.max()) < 0.9
    assert float(t.mean()) == pytest.approx(0.5, abs=3e-3)
    assert float(t.var()) == pytest.approx(0.8**2 / 12, rel=2e-2)
    # a histogram flat to within sampling noise (10 bins of 10,000 +- 100)
    counts = torch.histc(t, bins=10, min=0.1, max=0.9)
    assert float((counts - 10_000).abs().max()) < 500


@pytest.mark.parametrize(("m", "s"), [(0.0, 1.0), (-0.5, 0.7), (1.0, 1.6)])
def test_logit_normal_times(m, s):
    """u = (t - lo) / (hi - lo) has logit(u) ~ N(m, s^2)."""
    g = torch.Generator().manual_seed(1)
    lo, hi = 1e-3, 1 - 1e-3
    t = LogitNormal(LogitNormal.Options(mean=m, std=s)).times(100_000, (lo, hi), "cpu", generator=g)
    assert float(t.min()) >= lo and float(t.max()) <= hi
    u = ((t.double() - lo) / (hi - lo)).clamp(1e-12, 1 - 1e-12)
    logit = torch.log(u) - torch.log1p(-u)
    assert float(logit.mean()) == pytest.approx(m, abs=0.02)
    assert float(logit.std()) == pytest.approx(s, rel=0.02)
    # the median of a logit-normal is sigmoid(m)
    assert float(u.median()) == pytest.approx(1 / (1 + math.exp(-m)), abs=5e-3)


def test_time_sampling_is_seeded():
    density = LogitNormal(LogitNormal.Options())
    a = density.times(10, (0, 1), "cpu", generator=torch.Generator().manual_seed(4))
    b = density.times(10, (0, 1), "cpu", generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)


def test_objective_uses_logit_normal_times():
    density = Choice.of("time_density", "logit_normal", LogitNormal, mean=1.0, std=0.5)
    objective = DDPM(ScoreOptions(time_sampling=density))
    path, net = PATHS["vp"](), Spy()
    torch.manual_seed(0)
    for _ in range(40):
        objective.loss(net, path, Batch(torch.randn(500, 2)))
    lo, hi = objective.time_range(path)
    u = ((torch.cat(net.times).double() - lo) / (hi - lo)).clamp(1e-12, 1 - 1e-12)
    logit = torch.log(u) - torch.log1p(-u)
    assert float(logit.mean()) == pytest.approx(1.0, abs=0.03)
    assert float(logit.std()) == pytest.approx(0.5, rel=0.05)


# -- stable targets ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path_name", list(PATHS))
def test_stable_target_is_batch_posterior(path_name):
    """With target = 'stable' the score target is the exact score of the batch's empirical mixture,
    sum_j w_ij (-(x_i - alpha_i z_j) / beta_i^2) with w_ij ∝ exp(-|x_i - alpha_i z_j|^2 / (2 beta_i^2))."""
    path = PATHS[path_name]()
    g = torch.Generator().manual_seed(7)
    z, eps = torch.randn(40, 2, generator=g, dtype=torch.float64), torch.randn(40, 2, generator=g, dtype=torch.float64)
    t = torch.rand(40, generator=g, dtype=torch.float64) * 0.9 + 0.05
    ps = path.sample(z, t, eps)
    a, b = ps.schedule.alpha, ps.schedule.beta  # [N, 1]
    diff = ps.x[:, None, :] - a[:, None] * z[None, :, :]  # [i, j, d]
    w = torch.softmax(-(diff**2).sum(-1) / (2 * b**2), dim=1)
    expected = (w[..., None] * (-diff / b[:, None] ** 2)).sum(1)
    z_bar, eps_bar = posterior_data_noise(ps)
    torch.testing.assert_close(from_data_noise(z_bar, eps_bar, Prediction.SCORE, ps.schedule), expected)
    # x = alpha z_bar + beta eps_bar still holds, and a batch of one gives back the pair itself
    torch.testing.assert_close(a * z_bar + b * eps_bar, ps.x)
    one = path.sample(z[:1], t[:1], eps[:1])
    z1, e1 = posterior_data_noise(one)
    torch.testing.assert_close((z1, e1), (z[:1], eps[:1]))


def test_stable_target_loss_runs_on_images():
    objective = DSM(DSMOptions(target="stable"))
    loss = objective.loss(Spy(), PATHS["vp"](), Batch(torch.randn(16, 1, 4, 4)))
    assert math.isfinite(float(loss.detach()))


def test_stable_target_of_a_conditional_model_averages_only_within_the_class():
    """With labels, sample i's posterior runs over the batch points of its own class (or over all points when
    its label was dropped to the null label): mixing classes would pull the conditional target towards the
    unconditional one."""
    from fmcore.core.objective import posterior_data_noise, same_condition
    from fmcore.plugins.loading import get_registry

    path = get_registry().get("path", "condot").cls(get_registry().get("path", "condot").options_class())
    g = torch.Generator().manual_seed(0)
    z = torch.randn(12, 2, generator=g)
    labels = torch.tensor([0, 1, 2] * 4)
    null = 3
    cond = labels.clone()
    cond[5] = null  # dropped: may use every point
    ps = path.sample(z, torch.full((12,), 0.3), torch.randn(12, 2, generator=g))
    z_bar, _ = posterior_data_noise(ps, same_condition(labels, cond, null))
    for i in range(12):
        keep = torch.ones(12, dtype=torch.bool) if cond[i] == null else labels == labels[i]
        # sample i's posterior mean over the allowed points only: alpha = 0.3, beta = 0.7 at t = 0.3
        logits = -((ps.x[i] - 0.3 * z[keep]) ** 2).sum(1) / (2 * 0.7**2)
        expected = (torch.softmax(logits, 0)[:, None] * z[keep]).sum(0)
        torch.testing.assert_close(z_bar[i], expected)


def test_time_range_is_cached_per_path_even_for_unhashable_paths():
    """A path defined with attrs.define (unhashable) works, and each path gets its own range."""
    import attrs as _attrs

    from fmcore import GaussianPath
    from fmcore.plugins.loading import get_registry

    @_attrs.define
    class Linear(GaussianPath):
        sigma_min: float = 0.0

        def coefficients(self, t):
            k = 1.0 - self.sigma_min
            return t, 1.0 - k * t, torch.ones_like(t), torch.full_like(t, -k)

    dsm = get_registry().get("objective", "dsm")
    objective = dsm.cls(dsm.options_class(t_eps=0.01))
    assert objective.time_range(Linear()) == (0.01, 0.99)
    assert objective.time_range(Linear(sigma_min=0.1)) == (0.01, 1.0)
