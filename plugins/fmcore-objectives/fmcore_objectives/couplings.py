"""Minibatch optimal-transport couplings: exact assignment (``ot``) and entropic, log-domain Sinkhorn
(``sinkhorn``, on the batch's device). See :mod:`fmcore.core.coupling` for what a coupling does."""

from __future__ import annotations

import math

import attrs
import numpy as np
import torch
from torch import Tensor

from fmcore import Coupling, help_field, one_of, positive
from fmcore.core.coupling import squared_distances
from fmcore.core.options import MAX_WIDTH, int_range


@attrs.define(kw_only=True)
class ExactOTOptions:
    block: int = help_field(0, "solve the assignment within blocks of this many points (consecutive in the batch; "
                            "with labels, of one label), 0: the whole batch (each label's points); smaller blocks "
                            "pair less sharply and cost O(n block^2)", validator=int_range(0, MAX_WIDTH))


class ExactOT(Coupling):
    """Exact minibatch OT: the permutation minimising ``sum_j ||x0_idx(j) - z_j||^2`` (Hungarian algorithm,
    scipy's linear_sum_assignment on the host, O(n^3)) over each group of points: the batch, or each label's
    points when the data has labels, split into blocks of ``block`` consecutive points (the batch is an iid draw,
    so a block is a smaller minibatch)."""

    Options = ExactOTOptions

    def partners(self, x0: Tensor, z: Tensor, labels: Tensor | None) -> Tensor:
        n = z.shape[0]
        if labels is None:
            groups = [torch.arange(n)]
        else:
            host_labels = labels.cpu()
            groups = [(host_labels == label).nonzero().flatten() for label in torch.unique(host_labels)]
        idx = torch.empty(n, dtype=torch.long)
        for group in groups:
            for members in group.split(self.options.block or len(group)):
                dev = members.to(z.device)
                idx[members] = members[torch.from_numpy(_assignment(x0[dev], z[dev]))]
        return idx.to(z.device)


def _assignment(x0: Tensor, z: Tensor) -> np.ndarray:
    """``cols`` with ``cols[j]`` the row of ``x0`` assigned to ``z[j]`` in the optimal permutation."""
    cost = squared_distances(z.double(), x0.double()).cpu().numpy()
    from scipy.optimize import linear_sum_assignment  # imported when used: scipy costs ~0.5 s at startup

    _, cols = linear_sum_assignment(cost)
    return cols


@attrs.define(kw_only=True)
class SinkhornOptions:
    epsilon: float = help_field(0.5, "entropic regularisation, relative to the batch's mean squared distance "
                                "(smaller: closer to exact OT and straighter paths, slower to converge)",
                                validator=positive)
    iterations: int = help_field(20, "Sinkhorn iterations per batch (a fixed budget: no host synchronisation)",
                                 validator=positive)
    pairs: str = help_field("sample", "how the plan becomes pairs: 'sample' a partner for each data point from "
                            "its column of the plan (torch's global generator), or take the column's 'argmax'",
                            validator=one_of(("sample", "argmax")))


#: kernel-domain iterations between two absorptions of the scalings into the log-domain potentials
ABSORB_EVERY = 10


class Sinkhorn(Coupling):
    """Entropic minibatch OT (Cuturi 2013), on the device: the plan ``P = diag(e^f) exp(-C / reg) diag(e^g)``
    with uniform marginals, ``reg = epsilon * mean(C)``; each data point's partner is drawn from (or is the
    mode of) its column of ``P``."""

    Options = SinkhornOptions

    def plan(self, x0: Tensor, z: Tensor, labels: Tensor | None) -> Tensor:
        """``log P`` [n, n] (rows: prior draws, columns: data), after the budgeted Sinkhorn iterations; pairs
        across labels have probability zero. Columns sum exactly to 1/n, rows approximately.

        Log-stabilised (Schmitzer 2019), in the batch's precision (float32 at least): the potentials ``f, g``
        live in the log domain; between two absorptions the iterations run on the scaled kernel
        ``K = exp(log_k + f + g)`` as matrix-vector products, ``a = (1/n) / (K b)``, ``b = (1/n) / (K^T a)``, and
        every :data:`ABSORB_EVERY` iterations ``f += log a``, ``g += log b``. The same iterates as the log-domain
        updates ``f = -log n - LSE_j(log_k + g)``, ``g = -log n - LSE_i(log_k + f)`` (the first iteration is
        one), at two matrix-vector products per iteration instead of two exponentiations of the n x n matrix."""
        o = self.options
        cost = squared_distances(x0, z)
        n = cost.shape[0]
        log_k = -cost / (o.epsilon * cost.mean().clamp_min(1e-12))
        if labels is not None:
            log_k = log_k.masked_fill(labels[:, None] != labels[None, :], -math.inf)
        log_m = -math.log(n)
        f = log_m - torch.logsumexp(log_k, dim=1)
        g = log_m - torch.logsumexp(log_k + f[:, None], dim=0)
        done = 1
        while done < o.iterations:
            k = torch.exp(log_k + f[:, None] + g[None, :]).mul_(n)  # n K: then a = 1 / (n K b), the same a
            b = torch.ones_like(g)
            for _ in range(min(ABSORB_EVERY, o.iterations - done)):
                a = torch.mv(k, b).reciprocal_()
                b = torch.mv(k.T, a).reciprocal_()
            f, g = f + a.log(), g + b.log()
            done += ABSORB_EVERY
        return log_k + f[:, None] + g[None, :]

    def partners(self, x0: Tensor, z: Tensor, labels: Tensor | None) -> Tensor:
        log_p = self.plan(x0, z, labels)
        if self.options.pairs == "argmax":
            return log_p.argmax(dim=0)
        # inverse CDF per column: the first i whose cumulative mass exceeds u ~ U(0, column total)
        cdf = torch.cumsum(log_p.T.exp(), dim=1)
        u = torch.rand(cdf.shape[0], 1, dtype=cdf.dtype, device=cdf.device) * cdf[:, -1:]
        return torch.searchsorted(cdf, u, right=True).clamp_max_(cdf.shape[1] - 1).flatten()
