"""Sliced score matching: its gradient is an unbiased estimate of the exact score-matching gradient
(1/2 ||s||^2 + tr(ds/dx), closed form for a linear score model), and the objective trains on Gaussian paths."""

from __future__ import annotations

import itertools

import pytest
import torch
from fmcore_objectives.ssm import SSM, projections, sliced_score_loss

from fmcore import Prediction, convert
from fmcore.recipe.build import build
from fmcore.recipe.recipe import load_recipe
from tests.conftest import MOONS

D = 3


def linear_model(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a = torch.nn.Parameter(torch.randn(D, D, generator=g, dtype=torch.float64))
    b = torch.nn.Parameter(torch.randn(D, generator=g, dtype=torch.float64))
    return a, b


def exact_gradient(a, b, x):
    """Gradient of mean_i [1/2 ||A x_i + b||^2 + tr(A)] (Hyvärinen's loss of s(x) = A x + b)."""
    loss = (0.5 * (x @ a.T + b).square().sum(1) + torch.trace(a)).mean()
    return torch.autograd.grad(loss, (a, b))


def sliced_gradient(a, b, x, v, variance_reduction):
    """Gradient of the mean of the SSM estimator over the rows of ``v`` (each used at every x)."""
    n, m = x.shape[0], v.shape[0]
    xs, vs = x.repeat(m, 1), v.repeat_interleave(n, 0)
    loss = sliced_score_loss(lambda y: y @ a.T + b, xs, vs, variance_reduction).mean()
    return torch.autograd.grad(loss, (a, b))


@pytest.mark.parametrize("variance_reduction", [False, True])
def test_rademacher_estimator_averaged_over_all_directions_is_the_exact_gradient(variance_reduction):
    """E_v[v v^T] = I exactly over the 2^D sign vectors, so their average gradient is the exact one."""
    a, b = linear_model()
    x = torch.randn(6, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=D)), dtype=torch.float64)
    got_want = zip(sliced_gradient(a, b, x, signs, variance_reduction), exact_gradient(a, b, x), strict=True)
    for got, want in got_want:
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # one direction alone is not the exact gradient (the test can fail)
    one = sliced_gradient(a, b, x, signs[:1], variance_reduction)[0]
    assert not torch.allclose(one, exact_gradient(a, b, x)[0])


def test_gaussian_estimator_is_unbiased_within_its_standard_error():
    a, b = linear_model(2)
    x = torch.randn(4, D, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(4)
    draws = [torch.cat([g.flatten() for g in sliced_gradient(a, b, x, projections(torch.zeros(1, D,
             dtype=torch.float64), "gaussian"), False)]) for _ in range(4000)]
    draws = torch.stack(draws)
    want = torch.cat([g.flatten() for g in exact_gradient(a, b, x)])
    z = (draws.mean(0) - want) / (draws.std(0) / len(draws) ** 0.5)
    assert float(z.abs().max()) < 4.5  # 12 coordinates, each ~N(0, 1) if unbiased


def test_projections_have_identity_second_moment():
    torch.manual_seed(5)
    for law in ("rademacher", "gaussian"):
        v = projections(torch.zeros(20000, 2), law)
        torch.testing.assert_close(v.T @ v / 20000, torch.eye(2), atol=0.04, rtol=0)
    assert set(projections(torch.zeros(100, 2), "rademacher").unique().tolist()) == {-1.0, 1.0}


def test_ssm_loss_equals_half_the_dsm_loss_plus_a_constant_in_expectation(registry, write_recipe):
    """By Stein's lemma E[s . eps] = beta E[tr ds/dx], so E[DSM] = 2 E[SSM] + E[lambda ||eps||^2 / beta^2] / D:
    the two losses of the same network differ by a network-independent constant (checked on two networks)."""
    text = MOONS.replace('name = "condot"', 'name = "vp"').replace('name = "cfm"', 'name = "ssm"\nprediction = "score"')
    c = build(load_recipe(write_recipe(text), registry), registry)
    dsm_text = text.replace('"ssm"', '"dsm"').replace('prediction = "score"\n', "")
    dsm = build(load_recipe(write_recipe(dsm_text, name="dsm.toml"), registry), registry)
    assert isinstance(c.objective, SSM) and c.objective.prediction.value == "score"
    batch = c.dataset.sample(20000, torch.Generator().manual_seed(6))
    gaps, losses = [], []
    for seed, scale, linear in ((7, 5.0, -2.0), (8, 3.0, 1.5)):
        torch.manual_seed(seed)
        net = build(load_recipe(write_recipe(text, name=f"n{seed}.toml"), registry), registry).network.double()

        def score(x, t, cond, net=net, scale=scale, linear=linear):  # far from zero, with a non-zero Jacobian
            return scale * net(x, t, cond) + linear * x.flip(1) + 0.5 * x

        b64 = type(batch)(batch.x.double())
        torch.manual_seed(9)
        ssm_loss = float(c.objective.loss(score, c.path, b64).detach())
        torch.manual_seed(9)
        dsm_loss = float(dsm.objective.loss(score, c.path, b64).detach())
        gaps.append(dsm_loss - 2 * ssm_loss)
        losses.append(ssm_loss)
    # the same t and eps draws (ssm draws its projections after them); the constant E[||eps||^2] / D = 1
    assert abs(losses[0] - losses[1]) > 0.5
    assert gaps[0] == pytest.approx(1.0, abs=0.1) and gaps[1] == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("kind", ["noise", "data", "velocity", "score"])
def test_a_network_predicting_another_quantity_is_scored_through_its_exact_conversion(registry, write_recipe, kind):
    """``prediction = KIND``: the loss of a network predicting KIND is the score loss of the network converted
    to the score (here, of a score network converted to KIND and back), draw for draw."""
    text = MOONS.replace('name = "condot"', 'name = "vp"').replace('name = "cfm"', 'name = "ssm"\nprediction = "{}"')
    score_objective = build(load_recipe(write_recipe(text.format("score")), registry), registry)
    other = build(load_recipe(write_recipe(text.format(kind), name="k.toml"), registry), registry)
    assert other.objective.prediction.value == kind
    torch.manual_seed(3)
    net = score_objective.network.double()
    path = score_objective.path

    def as_kind(x, t, cond):  # the score network, re-expressed as a KIND prediction
        return convert(net(x, t, cond), Prediction.SCORE, Prediction(kind), x, path.schedule(t, x))

    batch = score_objective.dataset.sample(512, torch.Generator().manual_seed(4))
    batch = type(batch)(batch.x.double())
    torch.manual_seed(5)
    want = score_objective.objective.loss(net, path, batch)
    torch.manual_seed(5)
    got = other.objective.loss(as_kind, path, batch)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
