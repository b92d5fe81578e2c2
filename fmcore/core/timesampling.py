"""How training draws times ``t`` in ``[t_lo, t_hi]``."""

from __future__ import annotations

import torch
from torch import Tensor

TIME_SAMPLINGS = ("uniform", "logit_normal")


def sample_times(
    n: int,
    kind: str,
    t_range: tuple[float, float],
    *,
    device,
    generator: torch.Generator | None = None,
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
) -> Tensor:
    """``n`` times: ``u ~ U[0, 1)`` (uniform) or ``u = sigmoid(m + s N(0, 1))`` (logit-normal, as in
    SD3), mapped affinely onto ``t_range``."""
    if kind == "uniform":
        u = torch.rand(n, device=device, generator=generator)
    elif kind == "logit_normal":
        u = torch.sigmoid(logit_mean + logit_std * torch.randn(n, device=device, generator=generator))
    else:
        raise ValueError(f"unknown time sampling {kind!r}; expected one of {TIME_SAMPLINGS}")
    lo, hi = t_range
    return u if (lo, hi) == (0.0, 1.0) else lo + (hi - lo) * u
