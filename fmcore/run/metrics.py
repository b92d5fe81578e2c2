"""Distances between sample sets: exact Wasserstein-2 and the energy distance."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor


def _flat(x: Tensor | np.ndarray) -> np.ndarray:
    x = x.detach().cpu().double().numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64)
    return x.reshape(x.shape[0], -1)


def wasserstein2(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Exact W2 between two equal-size empirical measures: ``sqrt(min_pi mean ||a_i - b_pi(i)||^2)``.

    Solved as an assignment problem (the optimal plan between uniform measures of equal size is a
    permutation); O(n^3), a few seconds for n = 2,000.
    """
    a, b = _flat(a), _flat(b)
    if a.shape != b.shape:
        raise ValueError(f"W2 needs equal-size sets of the same dimension, got {a.shape} and {b.shape}")
    cost = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(max(cost[rows, cols].mean(), 0.0)))


def energy_distance(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """``2 E||X - Y|| - E||X - X'|| - E||Y - Y'||`` (V-statistic; >= 0, 0 iff the laws agree)."""
    a, b = torch.from_numpy(_flat(a)), torch.from_numpy(_flat(b))
    return float(2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean())


def straightness(trajectory: Tensor, times: Tensor) -> float:
    """``S = E_i int_0^1 ||v_i(t) - (x_i(1) - x_i(0))||^2 dt`` (Liu et al. 2022; 0 for straight paths) from
    trajectories [K + 1, N, ...] on ``times`` [K + 1], with time rescaled to [0, 1] and ``v`` the difference
    quotient of each step (for Euler exactly the velocity it evaluated): ``sum_k dt_k ||dx_k / dt_k - (x_K -
    x_0)||^2``, averaged over the N paths."""
    x = trajectory.double().flatten(2)
    t = times.double().to(x.device)
    t = (t - t[0]) / (t[-1] - t[0])
    dt = (t[1:] - t[:-1])[:, None, None]
    v = (x[1:] - x[:-1]) / dt
    chord = (x[-1] - x[0])[None]
    return float(((v - chord) ** 2).sum(-1).mul(dt[..., 0]).sum(0).mean())
