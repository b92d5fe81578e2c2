"""Shared stochastic-sampling math: the reverse-SDE diffusion, one Euler–Maruyama step, Langevin steps.

fmcore's time runs from noise (t = 0) to data (t = 1). For a Gaussian path ``x = alpha_t z + beta_t eps``
every diffusion ``sigma_t >= 0`` gives an SDE with the same marginals ``p_t`` as the probability-flow ODE:

    dX = [u_t(X) + sigma_t^2 / 2 * grad log p_t(X)] dt + sigma_t dW.

The path's own *reverse-SDE diffusion* (the forward noising SDE run backwards) is

    g(t)^2 = -alpha^2 d/dt (beta^2 / alpha^2) = 2 beta^2 (d_alpha / alpha - d_beta / beta),

which is ``b(1 - t)`` on VP (because ``beta d_beta = -alpha d_alpha`` there) and ``d[sigma^2]/ds`` at
``s = 1 - t`` on VE (``alpha = 1``); on CondOT it is ``2 (1 - t) / t``, infinite at t = 0.

Samplers import these functions; none repeats the formulas (docs/samplers.md).
"""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from fmcore.core.errors import FmError
from fmcore.core.field import Field
from fmcore.core.noise import BLOCK, BatchNoise
from fmcore.core.options import help_field, non_negative, one_of
from fmcore.core.path import GaussianPath, Schedule
from fmcore.core.tensors import as_time

DIFFUSIONS = ("path", "constant", "zero")
LANGEVIN_RULES = ("noise", "snr")


def reverse_diffusion_sq(s: Schedule) -> Tensor:
    """``g(t)^2 = 2 beta^2 d_alpha / alpha - 2 beta d_beta`` (``+inf`` where alpha = 0, e.g. CondOT at t = 0)."""
    return 2 * s.beta**2 * s.d_alpha / s.alpha - 2 * s.beta * s.d_beta


def gaussian_path(field: Field, what: str) -> GaussianPath:
    """The field's path, or an error saying that ``what`` needs a score (so a Gaussian path)."""
    if not isinstance(field.path, GaussianPath):
        raise FmError(f"{what} needs the score, which fmcore defines for Gaussian paths only; "
                      f"{type(field.path).__name__} is not one (use an ODE sampler: euler or heun)")
    return field.path


def score_time_range(field: Field, t_eps: float) -> tuple[float, float]:
    """Times where the field's score is finite: its time range, shrunk by ``t_eps`` at an end where beta = 0.

    A velocity-predicting field on CondOT (sigma_min = 0) has time range [0, 1], but its score
    ``-eps_hat / beta`` is undefined at t = 1; Langevin levels must stay below ``1 - t_eps`` there.
    """
    path = gaussian_path(field, "this sampler")
    lo, hi = field.time_range
    if float(path.endpoint(1.0).beta) == 0.0:
        hi = min(hi, 1.0 - t_eps)
    if float(path.endpoint(0.0).beta) == 0.0:
        lo = max(lo, t_eps)
    if not lo < hi:
        raise FmError(f"empty score time range [{lo}, {hi}]: t_eps = {t_eps} is too large")
    return lo, hi


@attrs.define(kw_only=True, slots=False)  # a mixin: several option mixins combine
class DiffusionOptions:
    """The choice of ``sigma_t`` in ``dX = [u + sigma_t^2/2 s] dt + sigma_t dW``."""

    diffusion: str = help_field(
        "path", "sigma_t: 'path' (scale * the path's reverse-SDE diffusion g(t)), 'constant' (= scale) or 'zero' "
        "(the probability-flow ODE, i.e. Euler)", validator=one_of(DIFFUSIONS),
    )
    scale: float = help_field(1.0, "multiplies g(t) ('path'), or the constant sigma ('constant')",
                              validator=non_negative)
    limit: float = help_field(
        1.0, "stability cap sigma_t^2 <= limit * beta_t^2 / h per step (0 disables); keeps the score term's "
        "contraction h sigma^2 / (2 var_t) <= limit / 2 where var_t >= beta_t^2", validator=non_negative,
    )


def diffusion_sq(o: DiffusionOptions, s: Schedule, h: Tensor) -> Tensor:
    """``sigma_t^2`` for a step of size ``h`` at schedule ``s``: the chosen diffusion, capped at
    ``limit * beta_t^2 / h`` (``min(+inf, cap) = cap`` makes CondOT's 'path' diffusion finite at t = 0)."""
    if o.diffusion == "path":
        sq = o.scale**2 * reverse_diffusion_sq(s)
    else:
        sq = torch.full_like(s.beta, o.scale**2 if o.diffusion == "constant" else 0.0)
    if o.limit > 0:
        sq = torch.minimum(sq, o.limit * s.beta**2 / h)
    return sq


def euler_step(field: Field, x: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
    """``x + h u(x, t)``, ``h = t_next - t``."""
    return x + (t_next - t) * field.velocity(x, t)


def euler_maruyama_step(field: Field, x: Tensor, t: Tensor, t_next: Tensor, noise: BatchNoise,
                        o: DiffusionOptions) -> Tensor:
    """``x + h [u(x,t) + sigma_t^2/2 s(x,t)] + sigma_t sqrt(h) n`` with one network evaluation.

    ``diffusion = 'zero'`` is exactly :func:`euler_step` (no score, no noise drawn).
    """
    if o.diffusion == "zero":
        return euler_step(field, x, t, t_next)
    h = t_next - t
    v, score = field.velocity_and_score(x, t)
    s = field.path.schedule(as_time(t, x).clamp(*field.time_range), x)
    sq = diffusion_sq(o, s, h)
    return x + h * (v + 0.5 * sq * score) + torch.sqrt(sq * h) * noise.randn().to(x.dtype)


@attrs.define(kw_only=True, slots=False)  # a mixin: several option mixins combine
class LangevinOptions:
    """How Langevin steps are sized."""

    rule: str = help_field(
        "noise", "step size a: 'noise' (a = step_size * beta_t^2, SMLD's a_i ∝ sigma_i^2) or 'snr' "
        "(a = 2 (snr |n| / |s|)^2, norms averaged over 64-sample noise blocks: Song et al.'s corrector)",
        validator=one_of(LANGEVIN_RULES),
    )
    step_size: float = help_field(0.1, "'noise' rule: step relative to the noise variance beta_t^2",
                                  validator=non_negative)
    snr: float = help_field(0.16, "'snr' rule: target ratio |a/2 s| / |sqrt(a) n| of drift to noise",
                            validator=non_negative)
    t_eps: float = help_field(1e-3, "keep Langevin times below 1 - t_eps where beta_1 = 0 (score undefined)",
                              validator=non_negative)


def block_mean_norm(v: Tensor) -> Tensor:
    """Mean per-sample norm ``|v_i|`` over each sample's noise block (:data:`fmcore.core.noise.BLOCK` consecutive
    samples; batches start on block boundaries, so this never depends on how a run is split into batches).
    Shape [N, 1, ..., 1]."""
    norms = v.flatten(1).norm(dim=1)
    n = norms.shape[0]
    pad = -n % BLOCK
    padded = torch.cat([norms, norms.new_zeros(pad)]).view(-1, BLOCK)
    counts = torch.full((padded.shape[0],), float(BLOCK), dtype=norms.dtype, device=norms.device)
    counts[-1] = BLOCK - pad
    means = (padded.sum(1) / counts).repeat_interleave(BLOCK)[:n]
    return means.reshape(n, *([1] * (v.ndim - 1)))


def langevin_step(field: Field, x: Tensor, t: Tensor, noise: BatchNoise, o: LangevinOptions) -> Tensor:
    """One Langevin step at time ``t`` targeting ``p_t``: ``x + (a/2) s(x, t) + sqrt(a) n``.

    'noise': ``a = step_size beta_t^2``. 'snr': ``a = 2 (snr mean|n| / mean|s|)^2`` with the norms averaged over
    the sample's noise block of 64 (score_sde averages over the batch, which would make a sample depend on the
    batch split; per-sample norms make the step depend on x and bias low-dimensional data outwards). Both are
    capped at ``a <= beta_t^2`` (stable for any p_t whose variance is >= beta_t^2: contraction a / (2 var) <= 1/2).
    """
    score = field.score(x, t)
    n = noise.randn().to(x.dtype)
    beta2 = field.path.schedule(as_time(t, x).clamp(*field.time_range), x).beta ** 2
    if o.rule == "noise":
        a = o.step_size * beta2
    else:
        a = 2 * (o.snr * block_mean_norm(n) / block_mean_norm(score).clamp_min(torch.finfo(x.dtype).tiny)) ** 2
    a = torch.minimum(a, beta2)
    return x + 0.5 * a * score + torch.sqrt(a) * n


def langevin(field: Field, x: Tensor, t: Tensor, noise: BatchNoise, o: LangevinOptions, steps: int) -> Tensor:
    """``steps`` Langevin steps at time ``t`` (the corrector of a predictor–corrector sampler)."""
    for _ in range(steps):
        x = langevin_step(field, x, t, noise, o)
    return x
