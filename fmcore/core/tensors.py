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
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        return t.expand(x.shape[0])
    return t
