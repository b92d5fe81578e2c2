"""Couplings: how a training batch pairs prior draws with data points before the path is sampled.

A coupling is a component (kind ``coupling``, recipe table ``[coupling]``, default ``independent``). The
objective draws ``eps ~ N(0, I)`` for a batch of data ``z`` and calls :meth:`Coupling.pair`, which returns the
noise reordered (or resampled from the batch's draws) so that row ``i`` of the noise is the partner of data
point ``i``. Minibatch optimal-transport couplings (Tong et al. 2023; Pooladian et al. 2023) choose partners
that minimise ``sum_i ||x0_i - z_i||^2`` with ``x0 = path.prior_sample(eps)``; the marginals stay exact (the
noise is a permutation of iid draws), only the joint law of the pair changes, which straightens the flow.

Class-aware: with labels, partners are chosen only among points of the same label (the noise rows are split
into the same groups as the data, so each group's noise is still iid standard normal).

A data set can also store a fixed coupling (``Dataset.pairs``: each point comes with its partner noise in
``Batch.noise``, e.g. the (noise, endpoint) pairs of a trained flow written by ``fm reflow``); the ``pairs``
coupling (:attr:`Coupling.stored`) then takes those partners as they are.

Randomness comes only from torch's global generator (saved in every checkpoint), so resume stays exact.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor

from fmcore.core.errors import FmError
from fmcore.core.options import NoOptions

if TYPE_CHECKING:
    from fmcore.core.dataset import Batch
    from fmcore.core.path import ProbabilityPath


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """``C_ij = ||a_i - b_j||^2 = ||a_i||^2 + ||b_j||^2 - 2 a_i . b_j`` over flattened rows (one matrix product,
    clamped at 0 against rounding), in float32 at least."""
    a, b = a.flatten(1), b.flatten(1)
    if a.dtype not in (torch.float32, torch.float64):
        a, b = a.float(), b.float()
    return torch.addmm((a * a).sum(1, keepdim=True) + (b * b).sum(1), a, b.T, alpha=-2.0).clamp_min_(0.0)


class Coupling(abc.ABC):
    """Base class of couplings: :meth:`partners` picks, for each data point ``j``, the noise row ``i``."""

    Options: ClassVar[type] = NoOptions
    #: True for the coupling that leaves the independent pairs as drawn (objectives need nothing from it)
    independent: ClassVar[bool] = False
    #: True for a coupling that takes the partners the data set stores beside each point (``Batch.noise``)
    stored: ClassVar[bool] = False

    def __init__(self, options=None):
        self.options = options if options is not None else self.Options()

    @abc.abstractmethod
    def partners(self, x0: Tensor, z: Tensor, labels: Tensor | None) -> Tensor:
        """Indices ``idx`` [n] (long, on z's device): noise row ``idx[j]`` becomes data point ``j``'s partner.
        ``x0`` [n, ...] are the prior draws, ``z`` [n, ...] the data; with ``labels`` [n], draw ``i`` (in the
        group of ``labels[i]``) may only be paired with a point ``j`` of the same label."""

    def pair(self, eps: Tensor, z: Tensor, labels: Tensor | None = None,
             x0: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(eps', z, labels)`` with ``eps'[j]`` the partner of ``z[j]``; the cost is measured between the prior
        draws ``x0`` (default: ``eps`` itself) and the data. Data and labels are returned unchanged."""
        if self.independent:
            return eps, z, labels
        with torch.no_grad():
            idx = self.partners(eps if x0 is None else x0, z, labels)
        return eps[idx], z, labels

    def noise(self, batch: Batch, path: ProbabilityPath) -> Tensor:
        """The standard normal draw paired with each point of ``batch.x``: the stored partners (``stored``
        couplings), else iid draws ``randn_like(batch.x)`` paired by :meth:`pair` (left as drawn when
        ``independent``)."""
        z = batch.x
        if self.stored:
            if batch.noise is None or batch.noise.shape != z.shape:
                got = "no noise" if batch.noise is None else f"noise of shape {list(batch.noise.shape)}"
                raise FmError(f"the {type(self).__name__} coupling takes the noise stored beside each data point, "
                              f"but the batch of data {list(z.shape)} came with {got}; train on a data set of "
                              "stored pairs ([data] name = 'pairs', written by fm reflow)")
            return batch.noise
        eps = torch.randn_like(z)
        if self.independent:
            return eps
        return self.pair(eps, z, batch.labels, x0=path.prior_sample(eps))[0]


class Independent(Coupling):
    """Independent pairs, as drawn: ``(eps_i, z_i)`` with ``eps`` and ``z`` independent (plain flow matching)."""

    independent = True

    def partners(self, x0: Tensor, z: Tensor, labels: Tensor | None) -> Tensor:
        return torch.arange(z.shape[0], device=z.device)


class StoredPairs(Coupling):
    """The data set's fixed coupling: each point's partner is the noise stored beside it (``Batch.noise``), e.g.
    the (noise, endpoint) pairs of a trained flow (rectified flow's reflow, Liu et al. 2022)."""

    stored = True

    def partners(self, x0: Tensor, z: Tensor, labels: Tensor | None) -> Tensor:
        return torch.arange(z.shape[0], device=z.device)
