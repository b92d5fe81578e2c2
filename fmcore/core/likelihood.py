"""Log-densities of a field's model through the probability-flow ODE (instantaneous change of variables).

Along ``dx/dt = u_t(x)`` the density obeys ``d/dt log p_t(x_t) = -div u_t(x_t)``. Integrating the pair
``(x, a)`` with ``da/dt = div u_t(x)`` from ``a = 0`` at the data end ``t_hi`` down to the noise end ``t_lo``
gives

    log p_{t_hi}(x) = log p_{t_lo}(x_{t_lo}) + a(t_lo),        a(t_lo) = -int_{t_lo}^{t_hi} div u_t(x_t) dt.

``u`` is the field's velocity, converted from any parameterization by the core. The divergence is exact (the
diagonal of the Jacobian, read by backward passes on copies of x) or Hutchinson's estimate
``div u ~ (1/K) sum_k e_k^T (du/dx) e_k`` with K Rademacher or Gaussian probes per sample, fixed along the path:
``a`` is then K integrals, one per probe, whose mean is unbiased and whose spread gives the standard error.
``log p_{t_lo}`` is the path's ``prior_log_prob`` (or a given prior). Differentiable when asked (``grad=True``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import torch
from torch import Tensor

from fmcore.core.errors import FmError
from fmcore.core.field import Field
from fmcore.core.noise import BatchNoise
from fmcore.core.ode import dopri5, rk4
from fmcore.core.options import help_field, one_of, positive

#: ``divergence = "auto"`` is exact up to this many dimensions per sample, Hutchinson above
EXACT_MAX_DIM = 32


@attrs.define(kw_only=True)
class LikelihoodOptions:
    """How the joint ODE is solved and the divergence computed."""

    divergence: str = help_field("auto", f"'exact', 'hutchinson', or 'auto' (exact up to {EXACT_MAX_DIM} dimensions)",
                                 validator=one_of(("auto", "exact", "hutchinson")))
    probes: int = help_field(4, "Hutchinson: probe vectors K per sample (K >= 2 gives a standard error)",
                             validator=positive)
    probe: str = help_field("rademacher", "Hutchinson probe law: 'rademacher' or 'gaussian'",
                            validator=one_of(("rademacher", "gaussian")))
    solver: str = help_field("dopri5", "'dopri5' (adaptive, per sample) or 'rk4' (fixed grid of `steps`)",
                             validator=one_of(("dopri5", "rk4")))
    rtol: float = help_field(1e-5, "dopri5 relative tolerance", validator=positive)
    atol: float = help_field(1e-5, "dopri5 absolute tolerance", validator=positive)
    max_steps: int = help_field(10_000, "dopri5 step budget per sample", validator=positive)
    steps: int = help_field(100, "rk4 steps", validator=positive)
    seed: int = help_field(0, "seed of the Hutchinson probes (sample i's probes depend only on (seed, i))")


@attrs.frozen
class LogDensity:
    """``logp`` [N] (nats) of the model at time ``t`` (the field's data end), with its standard error [N] (0 for
    the exact divergence, NaN for one probe), the prior term and the integral ``a`` [N], the noise ``x_{t_lo}``
    reached, and the evaluations per sample [N]."""

    logp: Tensor
    stderr: Tensor
    prior: Tensor
    delta: Tensor
    noise: Tensor
    nfe: Tensor
    t: float
    divergence: str


def resolve_divergence(divergence: str, dim: int) -> str:
    """``auto`` -> ``exact`` up to :data:`EXACT_MAX_DIM` dimensions, else ``hutchinson``."""
    if divergence == "auto":
        return "exact" if dim <= EXACT_MAX_DIM else "hutchinson"
    return divergence


def draw_probes(options: LikelihoodOptions, start: int, count: int, shape: tuple[int, ...], device,
                dtype) -> Tensor:
    """Probes [count, K, *shape] for samples ``start ..`` (per-sample seeding, as for sampling)."""
    noise = BatchNoise(options.seed, start, count, (options.probes, *shape), device, dtype)
    draw = noise.randn()
    return torch.where(draw >= 0, 1.0, -1.0).to(dtype) if options.probe == "rademacher" else draw


def exact_divergence(velocity: Callable[[Tensor, Tensor], Tensor], x: Tensor, rows: Tensor, create_graph: bool,
                     max_rows: int = 8192) -> tuple[Tensor, Tensor]:
    """``(v, sum_i dv_i/dx_i)`` with the divergence per sample [n, 1]: the field is evaluated on ``m`` copies of
    ``x`` at once (``m`` dimensions per pass, at most ``max_rows`` rows) and one backward pass with one-hot
    vectors reads ``m`` diagonal entries of the Jacobian."""
    n, dim = x.shape[0], x[0].numel()
    per_pass = max(1, min(dim, max_rows // max(n, 1)))
    total = torch.zeros(n, dtype=x.dtype, device=x.device)
    v = None
    for first in range(0, dim, per_pass):
        m = min(per_pass, dim - first)
        xr = x.repeat(m, *([1] * (x.ndim - 1)))
        vr = velocity(xr, rows.repeat(m))
        onehot = torch.zeros(m, n, dim, dtype=x.dtype, device=x.device)
        onehot[torch.arange(m), :, first + torch.arange(m)] = 1.0
        onehot = onehot.reshape(m * n, *x.shape[1:])
        (g,) = torch.autograd.grad(vr, xr, onehot, retain_graph=create_graph, create_graph=create_graph)
        total = total + (g * onehot).flatten(1).sum(1).reshape(m, n).sum(0)
        v = vr[:n] if v is None else v
    return v, total[:, None]


def hutchinson_divergence(v: Tensor, x: Tensor, probes: Tensor, create_graph: bool) -> Tensor:
    """``e_k^T (dv/dx) e_k`` per sample and probe [n, K] (one vector-Jacobian product per probe)."""
    out = []
    for k in range(probes.shape[1]):
        e = probes[:, k]
        (g,) = torch.autograd.grad(v, x, e, retain_graph=True, create_graph=create_graph)
        out.append((g * e).flatten(1).sum(1))
    return torch.stack(out, dim=1)


def log_prob(field: Field, x: Tensor, options: LikelihoodOptions | None = None, *, start: int = 0,
             prior: Callable[[Tensor], Tensor] | None = None, grad: bool = False) -> LogDensity:
    """``log p(x)`` [N] of the field's model at its data end (``field.time_range[1]``) for points ``x`` [N, ...].

    ``start``: the index of ``x[0]`` in a larger set (a multiple of 64), so that probes depend only on
    ``(seed, index)``. ``prior``: ``log p_{t_lo}`` (default: the path's ``prior_log_prob`` at ``t_lo``).
    ``grad``: keep the graph so that gradients flow to ``x`` and the network's parameters.
    """
    options = options or LikelihoodOptions()
    t_lo, t_hi = field.time_range
    dim = x[0].numel()
    kind = resolve_divergence(options.divergence, dim)
    probes = draw_probes(options, start, x.shape[0], tuple(x.shape[1:]), x.device, x.dtype) \
        if kind == "hutchinson" else None

    def rhs(ys: tuple[Tensor, ...], t: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
        xs = ys[0]
        tt = t.to(xs.dtype)

        def velocity(xr: Tensor, rr: Tensor) -> Tensor:
            return field.select(rr).velocity(xr, tt.repeat(xr.shape[0] // tt.shape[0]))

        with torch.enable_grad():
            xg = xs if (grad and xs.requires_grad) else xs.detach().requires_grad_(True)
            if kind == "exact":
                v, div = exact_divergence(velocity, xg, rows, grad)
            else:
                v = velocity(xg, rows)
                div = hutchinson_divergence(v, xg, probes[rows], grad)
        return (v, div) if grad else (v.detach(), div.detach())

    k = 1 if probes is None else probes.shape[1]
    state = (x, torch.zeros(x.shape[0], k, dtype=x.dtype, device=x.device))
    with torch.set_grad_enabled(grad):
        if options.solver == "dopri5":
            sol = dopri5(rhs, state, t_hi, t_lo, rtol=options.rtol, atol=options.atol, max_steps=options.max_steps)
        else:
            times = torch.linspace(t_hi, t_lo, options.steps + 1, dtype=torch.float64, device=x.device)
            sol = rk4(rhs, state, times)
        x_lo, a = sol.y
        log_prior = prior(x_lo) if prior is not None else field.path.prior_log_prob(x_lo, t_lo)
        delta = a.mean(1)
        logp = log_prior + delta
    if k > 1:
        stderr = a.detach().std(1) / math.sqrt(k)
    else:
        stderr = torch.full_like(delta, 0.0 if kind == "exact" else float("nan")).detach()
    if not bool(torch.isfinite(logp.detach()).all()):
        raise FmError(f"the log-density is not finite for {int((~torch.isfinite(logp.detach())).sum())} point(s): "
                      f"the field is not finite along their paths between t = {t_hi:g} and t = {t_lo:g}. An exact "
                      f"field of point masses (the oracle of a data set that is not a mixture) is singular at t = 1: "
                      f"set [objective] t_eps > 0 so that densities are taken at 1 - t_eps")
    return LogDensity(logp, stderr, log_prior, delta, x_lo, sol.nfe, t_hi, kind)
