"""A Gaussian mixture stated in the recipe: its exact law is known, so ``fm oracle`` gives its exact field and
``fm logp`` can be checked against the exact log-density."""

from __future__ import annotations

import math
from pathlib import Path

import attrs
import numpy as np
import torch

from fmcore import Batch, DataInfo, Dataset
from fmcore.core.options import help_field, positive
from fmcore.core.oracle import GaussianMixture


def _ring() -> list[list[float]]:
    return [[4.0 * math.cos(2 * math.pi * k / 8), 4.0 * math.sin(2 * math.pi * k / 8)] for k in range(8)]


@attrs.define(kw_only=True)
class GaussianMixtureOptions:
    means: list[list[float]] = help_field(
        attrs.Factory(list), "component means, a list of K points [[x, y], ...] (default, with no means_file: 8 on "
        "the circle of radius 4)")
    means_file: str = help_field("", "a .npy file holding the means [K, ...] (any point shape); instead of means",
                                 file=True)
    std: float = help_field(0.5, "standard deviation of every component (isotropic)", validator=positive)
    weights: list[float] = help_field(attrs.Factory(list), "component weights (normalised; default: equal)")

    def __attrs_post_init__(self):
        if self.means and self.means_file:
            raise ValueError("give the means either as a list (means) or as a .npy file (means_file), not both")
        if self.means and len({len(m) for m in self.means}) != 1:
            raise ValueError(f"means = {self.means!r}: every mean needs the same number of coordinates")
        if any(w < 0 for w in self.weights) or (self.weights and sum(self.weights) <= 0):
            raise ValueError(f"weights = {self.weights!r}: expected numbers >= 0 with a positive sum")


def load_means(options: GaussianMixtureOptions) -> torch.Tensor:
    """The means [K, *shape] as float64, from the list, the file or the default ring."""
    if not options.means_file:
        return torch.tensor(options.means or _ring(), dtype=torch.float64)
    path = Path(options.means_file)
    if path.suffix != ".npy" or not path.is_file():
        raise ValueError(f"means_file {str(path)!r}: expected an existing .npy file holding the means [K, ...]")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{str(path)!r} holds Python objects, which would need unpickling: {exc}") from None
    if array.ndim < 2 or array.shape[0] == 0 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{str(path)!r} holds an array of shape {array.shape} ({array.dtype}); expected numbers "
                         f"[K, ...] with K >= 1")
    return torch.from_numpy(array.astype(np.float64))


class GaussianMixtureData(Dataset):
    """sum_k w_k N(m_k, std^2 I) with means from the recipe or a .npy file; exact law known (mixture())."""

    Options = GaussianMixtureOptions

    def __init__(self, options: GaussianMixtureOptions):
        self.options = options
        means = load_means(options)
        if options.weights and len(options.weights) != means.shape[0]:
            raise ValueError(f"weights has {len(options.weights)} entries for {means.shape[0]} means")
        weights = torch.tensor(options.weights, dtype=torch.float64) if options.weights else None
        self._mixture = GaussianMixture.isotropic(means, options.std, weights)

    @property
    def info(self) -> DataInfo:
        return DataInfo(self._mixture.shape)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Batch:
        return Batch(self._mixture.sample(n, generator).float())

    def mixture(self) -> GaussianMixture:
        return self._mixture
