"""Couplings: exact OT against brute force, Sinkhorn's marginals and its limit, class-aware pairing, the
independent coupling's loss unchanged, recipes, and exact resume with a random (Sinkhorn) coupling."""

from __future__ import annotations

import itertools
import math
import shutil

import pytest
import torch
from fmcore_objectives.couplings import ExactOT, Sinkhorn, SinkhornOptions

import fmcore
from fmcore.core.coupling import squared_distances
from fmcore.core.errors import FmError
from fmcore.core.objective import RegressionObjective
from fmcore.plugins.kinds import KINDS
from fmcore.plugins.registry import Registry
from fmcore.recipe.build import build
from fmcore.recipe.recipe import load_recipe
from fmcore.run.training import train
from tests.conftest import MOONS


def brute_force_cost(x0, z):
    cost = squared_distances(x0.double(), z.double())
    n = z.shape[0]
    return min(sum(float(cost[p[j], j]) for j in range(n)) for p in itertools.permutations(range(n)))


def paired_cost(eps, z):
    return float((eps.double() - z.double()).square().sum())


def test_exact_ot_finds_the_cheapest_permutation():
    torch.manual_seed(0)
    eps, z = torch.randn(7, 2), torch.randn(7, 2) * 2 + 1
    paired, z2, labels = ExactOT().pair(eps, z)
    assert z2 is z and labels is None
    assert sorted(paired.tolist()) == sorted(eps.tolist())  # a permutation of the draws
    assert paired_cost(paired, z) == pytest.approx(brute_force_cost(eps, z), rel=1e-9)
    assert paired_cost(paired, z) < paired_cost(eps, z)


def test_exact_ot_pairs_only_within_a_label():
    torch.manual_seed(1)
    eps, z = torch.randn(10, 3), torch.randn(10, 3)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 1, 2, 0, 1])
    paired, _, out_labels = ExactOT().pair(eps, z, labels)
    assert torch.equal(out_labels, labels)
    total = 0.0
    for k in range(3):
        group = (labels == k).nonzero().flatten()
        # each group's noise is a permutation of that group's own draws
        assert sorted(paired[group].tolist()) == sorted(eps[group].tolist())
        total += brute_force_cost(eps[group], z[group])
    assert paired_cost(paired, z) == pytest.approx(total, rel=1e-9)


@pytest.mark.parametrize("with_labels", [False, True])
def test_exact_ot_in_blocks_is_optimal_within_each_block_and_the_whole_batch_at_block_zero(with_labels):
    torch.manual_seed(3)
    eps, z = torch.randn(14, 2), torch.randn(14, 2) * 2 + 1
    labels = torch.tensor([0, 1] * 7) if with_labels else None
    if with_labels:  # each label's 7 points (in batch order) in blocks of 6 and 1
        blocks = [[0, 2, 4, 6, 8, 10], [12], [1, 3, 5, 7, 9, 11], [13]]
    else:  # block 6 over 14 points: the last block is short
        blocks = [range(0, 6), range(6, 12), range(12, 14)]
    paired, _, _ = ExactOT(ExactOT.Options(block=6)).pair(eps, z, labels)
    total = 0.0
    for rows in blocks:
        group = torch.tensor(list(rows))
        # each block's noise is a permutation of its own draws, optimally assigned
        assert sorted(paired[group].tolist()) == sorted(eps[group].tolist())
        total += brute_force_cost(eps[group], z[group])
    assert paired_cost(paired, z) == pytest.approx(total, rel=1e-9)
    whole, _, _ = ExactOT(ExactOT.Options(block=0)).pair(eps, z, labels)
    assert torch.equal(ExactOT(ExactOT.Options(block=14)).pair(eps, z, labels)[0], whole)
    assert paired_cost(whole, z) < paired_cost(paired, z)


def test_sinkhorn_plan_has_uniform_marginals_and_no_mass_across_labels():
    torch.manual_seed(2)
    x0, z = torch.randn(12, 2), torch.randn(12, 2)
    labels = torch.arange(12) % 3
    log_p = Sinkhorn(SinkhornOptions(epsilon=0.1, iterations=200)).plan(x0, z, labels)
    p = log_p.exp().double()
    torch.testing.assert_close(p.sum(0), torch.full((12,), 1 / 12, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(p.sum(1), torch.full((12,), 1 / 12, dtype=torch.float64), atol=1e-4, rtol=0)
    assert float(p[labels[:, None] != labels[None, :]].max()) == 0.0


@pytest.mark.parametrize("iterations", [1, 2, 10, 11, 37])
@pytest.mark.parametrize("epsilon", [0.01, 0.05, 1.0])
def test_sinkhorn_matches_the_plain_log_domain_iteration(iterations, epsilon):
    """The stabilised kernel-domain iterations are the log-domain Sinkhorn updates, iteration for iteration."""
    torch.manual_seed(6)
    x0, z = torch.randn(40, 2, dtype=torch.float64), 3 * torch.randn(40, 2, dtype=torch.float64)
    labels = torch.arange(40) % 2
    for lab in (None, labels):
        cost = ((x0[:, None] - z[None]) ** 2).sum(-1)
        log_k = -cost / (epsilon * cost.mean())
        if lab is not None:
            log_k = log_k.masked_fill(lab[:, None] != lab[None, :], -math.inf)
        f, g = torch.zeros(40, dtype=torch.float64), torch.zeros(40, dtype=torch.float64)
        for _ in range(iterations):
            f = -math.log(40) - torch.logsumexp(log_k + g[None, :], dim=1)
            g = -math.log(40) - torch.logsumexp(log_k + f[:, None], dim=0)
        want = log_k + f[:, None] + g[None, :]
        got = Sinkhorn(SinkhornOptions(epsilon=epsilon, iterations=iterations)).plan(x0, z, lab)
        finite = torch.isfinite(want)
        assert torch.equal(finite, torch.isfinite(got))
        torch.testing.assert_close(got[finite], want[finite], atol=1e-9, rtol=1e-9)


def test_sinkhorn_tends_to_exact_ot_as_epsilon_shrinks():
    torch.manual_seed(3)
    eps, z = torch.randn(7, 2), torch.randn(7, 2) * 2
    sinkhorn = Sinkhorn(SinkhornOptions(epsilon=2e-3, iterations=3000, pairs="argmax"))
    paired, _, _ = sinkhorn.pair(eps, z)
    assert paired_cost(paired, z) == pytest.approx(brute_force_cost(eps, z), rel=1e-6)
    wide = Sinkhorn(SinkhornOptions(epsilon=50.0, iterations=50)).plan(eps, z, None).exp()
    torch.testing.assert_close(wide, torch.full((7, 7), 1 / 49), atol=2e-3, rtol=0)  # large eps: independent


def test_sinkhorn_sampled_partners_follow_the_plan_columns_and_the_global_generator():
    torch.manual_seed(4)
    x0, z = torch.randn(5, 2), torch.randn(5, 2)
    coupling = Sinkhorn(SinkhornOptions(epsilon=0.5, iterations=100))
    column = torch.softmax(coupling.plan(x0, z, None).T, dim=1)  # P(partner i | data point j)
    torch.manual_seed(5)
    draws = torch.stack([coupling.partners(x0, z, None) for _ in range(4000)])
    freq = torch.stack([(draws == i).float().mean(0) for i in range(5)], dim=1)  # [j, i]
    assert float((freq - column).abs().max()) < 0.03  # 4,000 draws: std <= 0.008
    torch.manual_seed(5)
    assert torch.equal(coupling.partners(x0, z, None), draws[0])


def test_independent_coupling_leaves_the_loss_as_it_was(registry, write_recipe):
    """The regression loss with the default coupling draws t, then eps, from the global generator, exactly as
    the loss before couplings existed."""
    recipe = load_recipe(write_recipe(), registry)
    c = build(recipe, registry)
    assert recipe.coupling.name == "independent" and c.objective.coupling is c.coupling
    batch = c.dataset.sample(64)
    torch.manual_seed(6)
    loss = c.objective.loss(c.network, c.path, batch)
    torch.manual_seed(6)
    t = torch.rand(64)
    ps = c.path.sample(batch.x, t, torch.randn_like(batch.x))
    expected = ((c.network(ps.x, t, None) - c.path.conditional_velocity(ps.x, ps.z, t)) ** 2).mean()
    torch.testing.assert_close(loss, expected)


def test_recipe_coupling_table_builds_and_shortens_pairs(registry, write_recipe):
    recipe = load_recipe(write_recipe(MOONS + '\n[coupling]\nname = "ot"\n'), registry)
    c = build(recipe, registry)
    assert isinstance(c.objective.coupling, ExactOT)
    bad = write_recipe(MOONS + '\n[coupling]\nname = "sinkorn"\n', name="bad.toml")
    with pytest.raises(FmError, match="unknown coupling 'sinkorn'.*did you mean 'sinkhorn'"):
        load_recipe(bad, registry)
    options = write_recipe(MOONS + '\n[coupling]\nname = "sinkhorn"\nepsilon = -1.0\n', name="opt.toml")
    with pytest.raises(FmError, match=r"\[coupling\].*epsilon"):
        load_recipe(options, registry)


def test_an_objective_that_draws_its_own_pairs_refuses_a_coupling(registry, write_recipe):
    class OwnPairs(fmcore.Objective):
        prediction = fmcore.Prediction.VELOCITY

        def loss(self, network, path, batch, null_label=0):
            return network(batch.x, torch.rand(batch.x.shape[0]), None).square().mean()

    fresh = Registry()  # the installed components and this one, without touching the shared registry
    for kind in KINDS:
        for comp in registry.components(kind):
            fresh.add(kind, comp.name, comp.cls, comp.package, comp.version)
    fresh.add("objective", "own_pairs", OwnPairs)
    recipe = load_recipe(write_recipe(MOONS.replace('"cfm"', '"own_pairs"') + '\n[coupling]\nname = "ot"\n'), fresh)
    with pytest.raises(FmError, match=r"\[coupling\] ot .* does not use a coupling"):
        build(recipe, fresh)
    assert issubclass(RegressionObjective, fmcore.Objective) and RegressionObjective.uses_coupling


def test_resume_with_a_sinkhorn_coupling_is_bitwise_identical(tmp_path, write_recipe, registry):
    text = MOONS.replace("steps = 20\nbatch_size = 64\nlog_every = 10\n",
                         "steps = 40\nbatch_size = 64\nlog_every = 10\ncheckpoint_every = 20\nkeep_checkpoints = 5\n"
                         "ema = 0.9\nseed = 7\n")
    recipe = load_recipe(write_recipe(text + '\n[coupling]\nname = "sinkhorn"\niterations = 20\n'), registry)
    ref = tmp_path / "ref"
    train(recipe, registry, ref)
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    shutil.rmtree(run / "checkpoints" / "step_00000040")
    for name in ("model.safetensors", "ema.safetensors"):
        (run / name).unlink()
    train(load_recipe(run / "recipe.toml", registry), registry, run, resume=True)
    for name in ("model.safetensors", "ema.safetensors"):
        assert (run / name).read_bytes() == (ref / name).read_bytes(), name
