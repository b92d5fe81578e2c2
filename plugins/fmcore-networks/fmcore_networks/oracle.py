"""The oracle network: the exact marginal field of the recipe's data set, with no trainable parameters."""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch
from torch import Tensor

from fmcore import DataInfo, Dataset, FmError, Network, Prediction, ProbabilityPath
from fmcore.core.dataset import ArrayDataset
from fmcore.core.options import help_field, positive
from fmcore.core.oracle import GaussianMixture, Oracle, oracle_time_range


@attrs.define(kw_only=True)
class OracleOptions:
    max_points: int = help_field(
        2000, "data sets without an exact mixture: use the empirical law of at most this many of their points",
        validator=positive)
    seed: int = help_field(0, "which points (a seeded subset or draw) make up the empirical law")
    t_eps: float = help_field(1e-3, "an empirical law (point masses) on a path with beta_1 = 0 is singular at t = 1: "
                              "evaluate it only up to 1 - t_eps", validator=positive)


class OracleNetwork(Network):
    """Exact marginal prediction of the data set's law (its mixture(), else an empirical subset); not trainable."""

    Options = OracleOptions
    trainable: ClassVar[bool] = False
    needs_gaussian_path: ClassVar[bool] = True

    def __init__(self, options: OracleOptions, info: DataInfo):
        super().__init__(options, info)
        self.oracle: Oracle | None = None

    def mixture_of(self, dataset: Dataset) -> GaussianMixture:
        """``dataset.mixture()`` if it has one; else the empirical law of up to ``max_points`` of its points."""
        exact = dataset.mixture()
        if exact is not None:
            return exact
        g = torch.Generator().manual_seed(self.options.seed)
        if isinstance(dataset, ArrayDataset):
            data = dataset.data
            if data.shape[0] > self.options.max_points:
                data = data[torch.randperm(data.shape[0], generator=g)[: self.options.max_points]]
            return GaussianMixture.empirical(data)
        return GaussianMixture.empirical(dataset.sample(self.options.max_points, g).x)

    def bind(self, dataset: Dataset, path: ProbabilityPath, prediction: Prediction) -> None:
        """Read ``dataset`` as a mixture and predict its exact marginal ``prediction`` on ``path``."""
        self.oracle = Oracle(self.mixture_of(dataset), path, prediction)

    def time_range(self) -> tuple[float, float]:
        """Where the exact field is finite: :func:`fmcore.core.oracle.oracle_time_range`."""
        if self.oracle is None:
            return 0.0, 1.0
        return oracle_time_range(self.oracle.mixture, self.oracle.path, self.oracle.prediction, self.options.t_eps)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        if self.oracle is None:
            raise FmError("the oracle network is not bound to a data set and path: build it through a recipe "
                          "(fmcore.load_recipe, then fmcore.build), which binds it")
        return self.oracle(x, t)
