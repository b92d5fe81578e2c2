"""Shared Langevin math (the ``langevin`` sampler and the ``pc`` corrector use it): Langevin steps that target
``p_t`` at a fixed time, and the time range where the score is finite.

One step at time ``t``: ``x + (a/2) s(x, t) + sqrt(a) n`` with ``n ~ N(0, I)`` (Song & Ermon 2019).
"""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from fmcore.core.errors import FmError
from fmcore.core.field import Field
from fmcore.core.noise import BLOCK, BatchNoise
from fmcore.core.options import help_field, non_negative, one_of
from fmcore.core.path import GaussianPath
from fmcore.core.tensors import as_time

LANGEVIN_RULES = ("noise", "snr")


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
