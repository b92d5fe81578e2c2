"""ODE integrators with per-sample step control, on states that are tuples of [N, ...] tensors.

The right-hand side is called on the rows that are still integrating: ``f(ys, t, rows) -> dys`` with ``ys`` a
tuple of tensors holding those rows, ``t`` their times [n] (float64) and ``rows`` their indices in the batch
(for per-sample constants such as probe vectors). Rows never mix, so a sample's result does not depend on its
batch-mates.

:func:`dopri5` is Dormand–Prince 5(4) (Hairer, Nørsett & Wanner, *Solving ODEs I*, II.5) with FSAL, the local
error of the embedded 4th-order solution measured per sample as

    err = sqrt(mean_i (e_i / (atol + rtol max(|y_i|, |y_new_i|)))^2)          (over all of the sample's components)

accepted when ``err <= 1``, a PI step-size controller ``h_new = h * clip(0.9 err^(-0.17) err_prev^(0.04), 0.2, 10)``
(``err_prev`` of the last accepted step; no growth right after a rejection), Hairer's first-step selection and
a step budget. Steps are clipped so that no stage time leaves ``[t0, t1]``. Gradients flow through the states
(the step-size decisions are made on detached values).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch
from torch import Tensor

from fmcore.core.errors import FmError

State = tuple[Tensor, ...]
RHS = Callable[[State, Tensor, Tensor], State]

# Dormand–Prince 5(4) tableau: nodes C, stages A, 5th-order weights B (= the last stage row, FSAL) and the
# error weights E = B - B*, B* the embedded 4th-order weights.
C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
B = A[6]
E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)

SAFETY, BETA, EXPO = 0.9, 0.04, 0.2 - 0.04 * 0.75
MIN_FACTOR, MAX_FACTOR = 0.2, 10.0


@attrs.frozen
class Solution:
    """Final states, times reached [N], evaluations of the right-hand side and steps taken (accepted or not) per
    sample [N] (int64), and the states at ``record_times`` ([M, N, ...] each, cubic Hermite interpolation between
    accepted steps) when asked."""

    y: State
    t: Tensor
    nfe: Tensor
    steps: Tensor
    record: State | None = None


def _rows(ys: State, rows: Tensor) -> State:
    return tuple(y[rows] for y in ys)


def _combine(y: State, h: Tensor, ks: list[State], weights) -> State:
    """``y + h sum_j w_j k_j`` per component (``h`` shaped [n], broadcast over each component)."""
    out = []
    for i, yi in enumerate(y):
        hb = h.to(yi.dtype).reshape(-1, *([1] * (yi.ndim - 1)))
        acc = None
        for w, k in zip(weights, ks, strict=True):
            if w != 0.0:
                acc = w * k[i] if acc is None else acc + w * k[i]
        out.append(yi if acc is None else yi + hb * acc)
    return tuple(out)


def _put(full: State, rows: Tensor, part: State) -> State:
    """``full`` with ``rows`` replaced by ``part`` (out of place, so autograd sees it)."""
    return tuple(f.index_copy(0, rows, p.to(f.dtype)) for f, p in zip(full, part, strict=True))


def rms_norm(ys: State, scale: State) -> Tensor:
    """Per-sample root mean square of ``y / scale`` over every component of every tensor, shape [n]."""
    total, count = None, 0
    for y, s in zip(ys, scale, strict=True):
        q = (y.detach() / s).flatten(1).to(torch.float64)
        part = (q**2).sum(1)
        total = part if total is None else total + part
        count += q.shape[1]
    return torch.sqrt(total / count)


def _scale(y0: State, y1: State, rtol: float, atol: float) -> State:
    return tuple(atol + rtol * torch.maximum(a.detach().abs(), b.detach().abs()) for a, b in zip(y0, y1, strict=True))


def initial_step(f: RHS, y: State, t: Tensor, f0: State, direction: float, span: Tensor, rtol: float,
                 atol: float, rows: Tensor) -> Tensor:
    """Hairer's starting step (Solving ODEs I, II.4): ``h0 = 0.01 |y0| / |f0|``, one explicit Euler trial to
    estimate the second derivative ``d2``, then ``h = min(100 h0, (0.01 / max(|f0|, d2))^(1/5))``; at most
    the span. Costs one evaluation per sample."""
    scale = tuple(atol + rtol * yi.detach().abs() for yi in y)
    d0, d1 = rms_norm(y, scale), rms_norm(f0, scale)
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1)
    h0 = torch.minimum(h0, span)
    y1 = _combine(y, direction * h0, [f0], [1.0])
    f1 = f(y1, t + direction * h0, rows)
    d2 = rms_norm(tuple(a - b for a, b in zip(f1, f0, strict=True)), scale) / h0
    big = torch.maximum(d1, d2)
    h1 = torch.where(big <= 1e-15, torch.maximum(torch.full_like(h0, 1e-6), 1e-3 * h0), (0.01 / big) ** 0.2)
    return torch.minimum(torch.minimum(100 * h0, h1), span)


def _hermite(y0: Tensor, y1: Tensor, f0: Tensor, f1: Tensor, h: Tensor, theta: Tensor) -> Tensor:
    """Cubic Hermite interpolant between ``(y0, f0)`` and ``(y1, f1)`` over a step ``h`` at fractions ``theta``
    [M, n]; returns [M, n, ...]."""
    shape = (*theta.shape, *([1] * (y0.ndim - 1)))
    th, hb = theta.reshape(shape).to(y0.dtype), h.to(y0.dtype).reshape(1, -1, *([1] * (y0.ndim - 1)))
    h00, h10 = (1 + 2 * th) * (1 - th) ** 2, th * (1 - th) ** 2
    h01, h11 = th**2 * (3 - 2 * th), th**2 * (th - 1)
    return h00 * y0 + h10 * hb * f0 + h01 * y1 + h11 * hb * f1


def dopri5(f: RHS, y0: State, t0: float, t1: float, *, rtol: float, atol: float, max_steps: int,
           first_step: float = 0.0, record_times: Tensor | None = None) -> Solution:
    """Integrate ``dy/dt = f(y, t)`` from ``t0`` to ``t1`` (either direction) for every sample independently."""
    n = y0[0].shape[0]
    device = y0[0].device
    direction = 1.0 if t1 >= t0 else -1.0
    t = torch.full((n,), float(t0), dtype=torch.float64, device=device)
    t_end = torch.full_like(t, float(t1))
    nfe = torch.zeros(n, dtype=torch.int64, device=device)
    steps = torch.zeros_like(nfe)
    y = y0
    everyone = torch.arange(n, device=device)
    if n == 0 or t0 == t1:
        return Solution(y, t, nfe, steps, _initial_record(y, record_times))
    k1 = f(y, t, everyone)
    nfe += 1
    span = (t_end - t).abs()
    if first_step > 0:
        h = torch.minimum(torch.full_like(t, first_step), span)
    else:
        h = initial_step(f, y, t, k1, direction, span, rtol, atol, everyone)
        nfe += 1
    err_prev = torch.full_like(t, 1e-4)
    rejected = torch.zeros(n, dtype=torch.bool, device=device)
    record = _initial_record(y, record_times)
    while True:
        active = t != t_end
        if not bool(active.any()):
            break
        rows = active.nonzero().squeeze(1)
        if int(steps[rows].max()) >= max_steps:
            late = int((steps[rows] >= max_steps).sum())
            raise FmError(
                f"dopri5: {late} sample(s) used the step budget of {max_steps} steps before reaching t = {t1:g} "
                f"(one stopped at t = {float(t[rows][steps[rows] >= max_steps][0]):.6g}); the field is stiff or "
                f"singular there, or the tolerances (rtol = {rtol:g}, atol = {atol:g}) are too tight. Raise "
                f"max_steps, loosen rtol/atol, or use a fixed-step sampler")
        ya, ta, ka = _rows(y, rows), t[rows], _rows(k1, rows)
        remaining = (t_end[rows] - ta).abs()
        last = h[rows] >= remaining - 1e-13 * max(1.0, abs(float(t1)))  # never leave a sliver of the span
        ha = torch.where(last, remaining, h[rows])
        if bool((ha <= 1e-14 * torch.clamp(ta.abs(), min=1.0)).any()):
            raise FmError(f"dopri5: the step size underflowed near t = {float(ta[ha.argmin()]):.6g} (the field is "
                          f"not finite or not smooth there); loosen rtol/atol or use a fixed-step sampler")
        hs = direction * ha
        ks = [ka]
        for i in range(1, 7):
            stage_t = torch.where(last, t_end[rows], ta + hs) if C[i] == 1.0 else ta + C[i] * hs
            ks.append(f(_combine(ya, hs, ks, A[i]), stage_t, rows))
        y_new = _combine(ya, hs, ks[:6], B)
        err_vec = _combine(tuple(torch.zeros_like(k) for k in ka), hs, ks, E)
        err = rms_norm(err_vec, _scale(ya, y_new, rtol, atol))
        finite = torch.isfinite(err) & torch.stack([torch.isfinite(v.detach()).flatten(1).all(1) for v in y_new]).all(0)
        err = torch.where(finite, err, torch.full_like(err, float("inf")))
        nfe[rows] += 6
        steps[rows] += 1
        accept = err <= 1.0
        # PI controller (Hairer's DOPRI5): factor = SAFETY err^-EXPO err_prev^BETA, clipped; no growth after a reject
        safe_err = torch.clamp(err, min=1e-10)
        factor = SAFETY * safe_err**-EXPO * err_prev[rows] ** BETA
        factor = torch.where(accept, factor, SAFETY * safe_err**-EXPO)
        factor = torch.clamp(torch.nan_to_num(factor, nan=MIN_FACTOR), MIN_FACTOR, MAX_FACTOR)
        factor = torch.where(accept & rejected[rows], torch.clamp(factor, max=1.0), factor)
        h = h.index_copy(0, rows, ha * factor)
        rejected = rejected.index_copy(0, rows, ~accept)
        if bool(accept.any()):
            good = accept.nonzero().squeeze(1)
            done = rows[good]
            t_next = torch.where(last[good], t_end[done], ta[good] + hs[good])
            if record is not None:
                record = _record(record, record_times, ya, y_new, ka, ks[6], ta, hs, good, done)
            y = _put(y, done, _rows(y_new, good))
            k1 = _put(k1, done, _rows(tuple(ks[6]), good))
            t = t.index_copy(0, done, t_next)
            err_prev = err_prev.index_copy(0, done, torch.clamp(err[good], min=1e-4))
    return Solution(y, t, nfe, steps, record)


def _initial_record(y: State, record_times: Tensor | None) -> State | None:
    if record_times is None:
        return None
    m = record_times.shape[0]
    return tuple(yi.detach()[None].expand(m, *yi.shape).clone() for yi in y)


def _record(record: State, times: Tensor, ya: State, y_new: State, ka: State, k7: State, ta: Tensor, hs: Tensor,
            good: Tensor, done: Tensor) -> State:
    """Fill the record at the times inside the accepted steps ``(t, t + h]`` of rows ``done``."""
    t0, h = ta[good], hs[good]
    theta = (times.to(torch.float64)[:, None] - t0[None]) / h[None]  # [M, n]
    inside = (theta > 0) & (theta <= 1 + 1e-12)
    out = []
    for i, rec in enumerate(record):
        vals = _hermite(ya[i][good].detach(), y_new[i][good].detach(), ka[i][good].detach(), k7[i][good].detach(),
                        h, theta.clamp(0, 1))
        mask = inside.reshape(*inside.shape, *([1] * (vals.ndim - 2)))
        cur = rec[:, done]
        rec = rec.clone()
        rec[:, done] = torch.where(mask, vals.to(rec.dtype), cur)
        out.append(rec)
    return tuple(out)


def rk4(f: RHS, y0: State, times: Tensor) -> Solution:
    """Classic fourth-order Runge–Kutta over the grid ``times`` (float64, any direction), 4 evaluations a step:
    ``y' = y + h/6 (k1 + 2 k2 + 2 k3 + k4)``."""
    n = y0[0].shape[0]
    rows = torch.arange(n, device=y0[0].device)
    y = y0
    for i in range(times.shape[0] - 1):
        y = rk4_step(f, y, times[i], times[i + 1], rows)
    steps = times.shape[0] - 1
    t = torch.full((n,), float(times[-1]), dtype=torch.float64, device=y0[0].device)
    count = torch.full((n,), steps, dtype=torch.int64, device=y0[0].device)
    return Solution(y, t, 4 * count, count)


def rk4_step(f: RHS, y: State, t: Tensor, t_next: Tensor, rows: Tensor | None) -> State:
    """One classic Runge–Kutta step from ``t`` to ``t_next`` (0-d tensors) for the samples ``rows`` (all: None)."""
    n = y[0].shape[0]
    rows = torch.arange(n, device=y[0].device) if rows is None else rows
    h = (t_next - t).to(torch.float64).expand(n)
    t_vec, mid = t.to(torch.float64).expand(n), (t + 0.5 * (t_next - t)).to(torch.float64).expand(n)
    k1 = f(y, t_vec, rows)
    k2 = f(_combine(y, h, [k1], [0.5]), mid, rows)
    k3 = f(_combine(y, h, [k1, k2], [0.0, 0.5]), mid, rows)
    k4 = f(_combine(y, h, [k1, k2, k3], [0.0, 0.0, 1.0]), t_next.to(torch.float64).expand(n), rows)
    return _combine(y, h, [k1, k2, k3, k4], [1 / 6, 1 / 3, 1 / 3, 1 / 6])
