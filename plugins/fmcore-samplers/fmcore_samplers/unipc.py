"""UniPC (Zhao et al. 2023): multistep predictor plus a corrector that reuses the next step's evaluation."""

from __future__ import annotations

import attrs
from torch import Tensor

from fmcore import BatchNoise, Choice, Field, Prediction, SampleResult, SamplerOptions, help_field, nested, one_of
from fmcore.core.exponential import INTERPOLATIONS, ExponentialSampler, Recorder, first_order, weights_for
from fmcore_samplers.dpm_solver_pp import ORDERS, combine, multistep_plan
from fmcore_samplers.grids import DataGrid


@attrs.define(kw_only=True)
class UniPCOptions(SamplerOptions):
    grid: Choice = nested("grid", "data", DataGrid, "time grid (default 'data': with order 2 in t on 'data' the best "
                          "all-round choice on the bench, docs/fast-sampling.md)")
    order: int = help_field(2, "predictor order (1 to 3); the corrector adds one", validator=one_of(ORDERS))
    interpolation: str = help_field("time", "variable of the interpolating polynomials: 'log_snr' or 'time' "
                                    "(the path's t)", validator=one_of(INTERPOLATIONS))


class UniPC(ExponentialSampler):
    """Predictor: DPM-Solver++'s multistep step of ``order``. Corrector: the same integral with the polynomial
    also through the data prediction at the predicted point, ``D(x_pred, s)`` (order + 1 nodes); that evaluation
    is the next step's, so NFE = steps. The last step is not corrected (it would cost an evaluation). The
    corrector's weights are the exact integrals of the interpolant (UniPC's B(h) = exact choice)."""

    Options = UniPCOptions

    def run(self, field: Field, x: Tensor, noise: BatchNoise, trajectory: bool = False) -> SampleResult:
        times, points = self.plan_grid(field)
        t_dev = times.to(device=x.device, dtype=x.dtype)
        order, steps = self.options.order, len(points) - 1
        how, path = self.options.interpolation, field.path
        predict = multistep_plan(path, points, order, how)
        correct = [weights_for(how, path, points[i], points[i + 1], points[max(0, i - order + 1): i + 2][::-1])
                   for i in range(steps - 1)]
        record = Recorder(x, trajectory)
        history = [field.predict(x, t_dev[0], Prediction.DATA)]
        for i, (a, weights) in enumerate(predict):
            x_pred = combine(a, x, weights, history)
            if i == steps - 1:
                x = x_pred
            else:
                history = [field.predict(x_pred, t_dev[i + 1], Prediction.DATA), *history][: order + 1]
                x = combine(first_order(points[i], points[i + 1])[0], x, correct[i], history)
                history = history[:order]
            record.add(x)
        return record.result(x, self.nfe(steps))
