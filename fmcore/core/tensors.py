"""Small tensor helpers shared by every component."""

from __future__ import annotations

import torch
from torch import Tensor


def expand_like(values: Tensor, x: Tensor) -> Tensor:
    """View per-sample scalars ``values`` of shape [N] as [N, 1, ..., 1] so they broadcast over ``x``.

    This is the one place time-like tensors meet data of any shape ([N, D] points, [N, C, H, W] images).
    """
    if values.ndim != 1 or values.shape[0] != x.shape[0]:
        raise ValueError(f"expected per-sample values of shape [{x.shape[0]}], got {tuple(values.shape)}")
    return values.reshape(values.shape[0], *([1] * (x.ndim - 1)))


def as_time(t: Tensor | float, x: Tensor) -> Tensor:
    """Time as a tensor of shape [N] on ``x``'s device and dtype (a float or 0-d tensor is broadcast)."""
    if isinstance(t, Tensor) and t.ndim == 1 and t.dtype is x.dtype and t.device == x.device:
        return t  # already so: the hot path's common case, without a call into torch
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        return t.expand(x.shape[0])
    return t


def as_per_sample(t: Tensor, x: Tensor) -> Tensor:
    """A view of per-sample values ``t`` [N] as [N, 1, ..., 1], broadcasting against ``x`` (no checks: the hot
    path's :func:`expand_like`)."""
    return t.view((-1,) + (1,) * (x.ndim - 1))


def combine(a: Tensor | float, x: Tensor, b: Tensor | float, y: Tensor) -> Tensor:
    """``a x + b y`` for coefficients ``a``, ``b`` that broadcast against ``x`` (tensors) or are Python floats,
    in one expression that skips what is exact to skip: a factor 1, a term with factor 0 (up to the sign of an
    exact zero) and ``+ (-1) y``, written ``- y``."""
    if isinstance(b, float) and b == -1.0:
        return _times(a, x) - y
    if isinstance(a, float) and a == 0.0:
        return _times(b, y)
    return _times(a, x) + _times(b, y)


def _times(c: Tensor | float, x: Tensor) -> Tensor:
    return x if isinstance(c, float) and c == 1.0 else c * x
