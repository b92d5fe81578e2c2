"""Data sets: where training data ``z ~ p_data`` (and optional class labels) come from."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar

import attrs
import numpy as np
import torch
from torch import Tensor

from fmcore.core.network import DataInfo

if TYPE_CHECKING:
    from fmcore.core.oracle import GaussianMixture


@attrs.frozen
class Batch:
    """Data ``x`` of shape [N, *shape], integer labels of shape [N] (or None) and, from data sets that store a
    fixed coupling (``Dataset.pairs``), the standard normal draw paired with each point, ``noise`` [N, *shape]."""

    x: Tensor
    labels: Tensor | None = None
    noise: Tensor | None = None

    def to(self, device) -> Batch:
        labels = None if self.labels is None else self.labels.to(device)
        noise = None if self.noise is None else self.noise.to(device)
        return Batch(self.x.to(device), labels, noise)


class Dataset(abc.ABC):
    """A source of training samples. ``sample`` must only use ``generator`` for its randomness."""

    Options: ClassVar[type]
    #: batches carry each point's stored partner noise (``Batch.noise``): train with the ``pairs`` coupling
    pairs: ClassVar[bool] = False

    @property
    @abc.abstractmethod
    def info(self) -> DataInfo:
        """Shape of one sample and number of classes (0 when unlabelled)."""

    @abc.abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> Batch:
        """``n`` training samples (on the CPU)."""

    def reference(self, n: int, seed: int) -> Batch:
        """``n`` samples for evaluation, independent of training draws (held-out data where it exists)."""
        g = torch.Generator().manual_seed(seed)
        return self.sample(n, g)

    def bin_width(self) -> float | None:
        """For discrete data (pixel levels), the spacing of the values in the model's space (digits: 17 levels
        mapped to [-1, 1], 1/8); None for continuous data. Likelihoods dequantize over bins of this width."""
        return None

    def measures(self, x: Tensor) -> dict[str, float]:
        """Measures of a sample set ``x`` [n, *shape] that this data set defines (``fm eval`` reports them for
        model samples beside fresh data), e.g. the moons' thickness; empty by default."""
        return {}

    def mixture(self) -> GaussianMixture | None:
        """The exact data distribution as a Gaussian mixture, where it is one (the ``oracle`` network uses it);
        None otherwise."""
        return None


class ArrayDataset(Dataset):
    """A data set held in memory as a tensor [N, ...]; batches are drawn uniformly with replacement."""

    def __init__(self, data: Tensor, labels: Tensor | None = None, num_classes: int = 0):
        self.data = data.float()
        self.labels = labels
        self._info = DataInfo(tuple(self.data.shape[1:]), num_classes)

    @property
    def info(self) -> DataInfo:
        return self._info

    def __len__(self) -> int:
        return self.data.shape[0]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Batch:
        idx = torch.randint(len(self), (n,), generator=generator)
        return Batch(self.data[idx], None if self.labels is None else self.labels[idx])


class MapDataset(Dataset):
    """A data set read item by item from disk (memory-mapped arrays, shards, image files), for data that does
    not fit in memory. Training streams it through a PyTorch DataLoader with worker processes, in seeded
    epoch permutations whose position is part of the checkpoint (:mod:`fmcore.run.loader`); :meth:`sample`
    (previews, evaluation) reads ``n`` items drawn with replacement.

    Subclasses give ``__len__``, :meth:`item` and, for sharded data, :meth:`shard_sizes`; :meth:`augment`
    is applied to each batch in the training process (with the generator that :meth:`sample` would use).
    """

    #: the trainer streams this data set instead of drawing batches from memory
    streaming: ClassVar[bool] = True

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of items."""

    @abc.abstractmethod
    def item(self, i: int) -> tuple[np.ndarray, int]:
        """Item ``i`` as float32 [*shape] (in the model's space) and its label (0 when unlabelled). Called in
        DataLoader worker processes: it must open its files itself (lazily), not share open handles."""

    def shard_sizes(self) -> list[int]:
        """Items per shard, in item order (one shard by default). Epochs visit the shards in a random order,
        each shard's items in a random order, so processes read mostly disjoint shards."""
        return [len(self)]

    def augment(self, batch: Batch, generator: torch.Generator | None = None) -> Batch:
        """Random augmentation of a training batch (none by default)."""
        return batch

    def batch(self, indices) -> Batch:
        """The items at ``indices`` as one batch (labels None when the data set is unlabelled)."""
        items = [self.item(int(i)) for i in indices]
        x = torch.from_numpy(np.stack([x for x, _ in items]))
        labels = torch.tensor([k for _, k in items], dtype=torch.long) if self.info.num_classes else None
        return Batch(x, labels)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Batch:
        idx = torch.randint(len(self), (n,), generator=generator)
        return self.augment(self.batch(idx.tolist()), generator)
