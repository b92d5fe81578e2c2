"""Sliced score matching (Song, Garg, Shi & Ermon 2019) at the noise levels of a Gaussian path.

The score ``s(x, t)`` of the marginal ``p_t`` is learned without the conditional target: Hyvärinen's
objective ``E_{p_t} [1/2 ||s||^2 + tr(ds/dx)]`` equals the Fisher divergence ``1/2 E ||s - grad log p_t||^2``
up to a constant, and the trace is estimated with random projections ``v`` (``E[v v^T] = I``)::

    J(s) = E_t lambda(t) E_{x ~ p_t} E_v [ v^T (ds/dx) v + 1/2 (v^T s)^2 ],   lambda(t) = beta_t^2.

``v^T (ds/dx) v`` is one reverse-mode pass through ``v . s`` (double backward). With
``variance_reduction`` (SSM-VR) the second term is replaced by its exact mean ``1/2 ||s||^2``. The network may
predict the score itself or another quantity converted to it exactly (``prediction``; e.g. the noise,
``s = -eps_hat / beta_t``), the conversion inside the differentiated function.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch
from torch import Tensor

from fmcore import Objective, Prediction, convert
from fmcore.core.options import help_field, one_of, positive
from fmcore_objectives.objectives import ScoreOptions


@attrs.define(kw_only=True)
class SSMOptions(ScoreOptions):
    """SSM's options: the projections, and the weighting as DSM's."""

    projections: int = help_field(1, "random projections v per sample", validator=positive)
    distribution: str = help_field("rademacher", "law of v: 'rademacher' (+-1 entries) or 'gaussian' (N(0, I))",
                                   validator=one_of(("rademacher", "gaussian")))
    variance_reduction: bool = help_field(True, "use 1/2 ||s||^2 (the exact mean over v) instead of 1/2 (v.s)^2")
    weighting: str = help_field("beta2", "lambda(t): 'beta2' (= beta_t^2) or 'none' (= 1)",
                                validator=one_of(("beta2", "none")))
    prediction: str = help_field("noise", "what the network predicts, converted to the score exactly: 'noise' "
                                 "(s = -eps / beta_t: outputs of order 1 at every noise level), 'score', 'data' or "
                                 "'velocity'", validator=one_of(tuple(p.value for p in Prediction)))


def projections(like: Tensor, distribution: str) -> Tensor:
    """Random directions shaped like ``like`` with ``E[v v^T] = I`` (torch's global generator)."""
    if distribution == "gaussian":
        return torch.randn_like(like)
    return torch.randint(0, 2, like.shape, device=like.device).to(like.dtype) * 2 - 1


def sliced_score_loss(score: Callable[[Tensor], Tensor], x: Tensor, v: Tensor,
                      variance_reduction: bool = True) -> Tensor:
    """Per-sample ``v^T (ds/dx) v + 1/2 (v^T s)^2`` (or ``+ 1/2 ||s||^2``), shape [n]; differentiable in the
    parameters of ``score``. ``x`` is detached and differentiated through here."""
    x = x.detach().requires_grad_(True)
    s = score(x)
    s = s if s.dtype == torch.float64 else s.float()  # reduced precision (autocast) is summed in float32
    sv = (s * v).flatten(1).sum(1)
    jtv = None
    if sv.requires_grad:  # a score that does not depend on x (e.g. a constant) has a zero Jacobian
        (jtv,) = torch.autograd.grad(sv.sum(), x, create_graph=True, allow_unused=True)
    vjv = torch.zeros_like(sv) if jtv is None else (jtv.to(s.dtype) * v).flatten(1).sum(1)
    half = s.square().flatten(1).sum(1) if variance_reduction else sv.square()
    return vjv + 0.5 * half


class SSM(Objective):
    """Sliced score matching: lambda(t) E_v [v^T (ds/dx) v + 1/2 (v^T s)^2] on x_t ~ p_t (no conditional target)."""

    Options = SSMOptions
    uses_coupling = True

    @property
    def prediction(self) -> Prediction:  # type: ignore[override]
        return Prediction(self.options.prediction)

    def loss(self, network, path, batch, null_label: int = 0) -> Tensor:
        o = self.options
        t, ps, cond = self.draw(path, batch, null_label)
        m = o.projections
        x, tt = ps.x.repeat_interleave(m, 0), t.repeat_interleave(m, 0)
        cond = None if cond is None else cond.repeat_interleave(m, 0)
        v = projections(x if x.dtype == torch.float64 else x.float(), o.distribution)
        sched = ps.schedule if m == 1 else path.schedule(tt, x)
        kind = self.prediction
        per = sliced_score_loss(lambda y: convert(network(y, tt, cond), kind, Prediction.SCORE, y, sched), x, v,
                                o.variance_reduction)
        if o.weighting == "beta2":
            per = per * sched.beta.flatten().to(per.dtype) ** 2
        return per.mean() / ps.z[0].numel()
