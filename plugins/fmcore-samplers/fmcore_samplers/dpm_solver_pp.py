"""DPM-Solver++ (Lu et al. 2022), multistep, in data prediction and log-SNR, for any Gaussian path."""

from __future__ import annotations

import attrs
from torch import Tensor

from fmcore import (
    BatchNoise,
    Choice,
    Field,
    GaussianPath,
    Prediction,
    SampleResult,
    SamplerOptions,
    help_field,
    nested,
    one_of,
)
from fmcore.core.exponential import INTERPOLATIONS, ExponentialSampler, Point, Recorder, first_order, weights_for
from fmcore_samplers.grids import DataGrid

ORDERS = (1, 2, 3)


@attrs.define(kw_only=True)
class DPMSolverOptions(SamplerOptions):
    grid: Choice = nested("grid", "data", DataGrid, "time grid (default 'data': with 2M in t on 'data' the best "
                          "all-round choice on the bench, docs/fast-sampling.md)")
    order: int = help_field(2, "1 (DDIM), 2 (2M) or 3 (3M): the polynomial through the last `order` data "
                            "predictions, integrated exactly", validator=one_of(ORDERS))
    interpolation: str = help_field("time", "variable of that polynomial: 'log_snr' (DPM-Solver++) or 'time' "
                                    "(the path's t)", validator=one_of(INTERPOLATIONS))


def multistep_plan(path: GaussianPath, points: list[Point], order: int,
                   interpolation: str) -> list[tuple[float, list[float]]]:
    """Per step ``i``: ``(a, w)`` with ``x_{i+1} = a x_i + sum_j w_j D_{i-j}`` (order lowered at the start)."""
    plan = []
    for i in range(len(points) - 1):
        nodes = points[max(0, i - order + 1): i + 1][::-1]  # newest first
        weights = weights_for(interpolation, path, points[i], points[i + 1], nodes)
        plan.append((first_order(points[i], points[i + 1])[0], weights))
    return plan


def combine(a: float, x: Tensor, weights: list[float], history: list[Tensor]) -> Tensor:
    """``a x + sum_j w_j D_j`` (history newest first)."""
    out = a * x
    for w, d in zip(weights, history, strict=False):
        out = out + w * d
    return out


class DPMSolverPP(ExponentialSampler):
    """Multistep DPM-Solver++: ``x_s = (beta_s / beta_t) x_t + beta_s int e^lambda P d lambda`` with ``P`` the
    polynomial through the last ``order`` data predictions, integrated exactly (true order 3 for 3M: its full
    quadratic term). ``P`` is in lambda (``interpolation = 'log_snr'``; sigma = beta / alpha for a step into
    beta = 0) or in t (``'time'``, the default: the order holds on grids that do not refine lambda at its infinite
    ends); both formulas are finite at alpha = 0 and beta = 0 (fmcore.core.exponential). One evaluation per step."""

    Options = DPMSolverOptions

    def run(self, field: Field, x: Tensor, noise: BatchNoise, trajectory: bool = False) -> SampleResult:
        times, points = self.plan_grid(field)
        t_dev = times.to(device=x.device, dtype=x.dtype)
        plan = multistep_plan(field.path, points, self.options.order, self.options.interpolation)
        record, history = Recorder(x, trajectory), []
        for i, (a, weights) in enumerate(plan):
            history = [field.predict(x, t_dev[i], Prediction.DATA), *history][: self.options.order]
            x = combine(a, x, weights, history)
            record.add(x)
        return record.result(x, self.nfe(len(plan)))
