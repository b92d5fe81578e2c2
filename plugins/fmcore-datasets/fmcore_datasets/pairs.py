"""Stored (noise, endpoint) pairs of a trained flow (``fm reflow``): a fixed coupling to train on."""

from __future__ import annotations

from pathlib import Path

import attrs
import torch

from fmcore import ArrayDataset, Batch
from fmcore.core.options import help_field
from fmcore.run.pairs import load_pairs


@attrs.define(kw_only=True)
class PairsOptions:
    path: str = help_field(help="a folder of (noise, endpoint) pairs written by fm reflow (relative to the recipe)",
                           file=True)


class PairsDataset(ArrayDataset):
    """The endpoints ``x1_i`` of a trained flow as data, each with its starting noise ``eps_i`` in
    ``Batch.noise`` (train with ``[coupling] name = "pairs"``); batches drawn uniformly with replacement.
    ``reference`` draws endpoints too: ``fm eval`` on such a run measures against the source model's samples."""

    Options = PairsOptions
    pairs = True

    def __init__(self, options: PairsOptions):
        self.options = options
        self.noise, data, labels, num_classes = load_pairs(Path(options.path))
        super().__init__(data, labels, num_classes)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Batch:
        idx = torch.randint(len(self), (n,), generator=generator)
        return Batch(self.data[idx], None if self.labels is None else self.labels[idx], self.noise[idx])
