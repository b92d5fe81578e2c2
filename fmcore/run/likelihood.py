"""Log-densities of a run's model for many points, and the held-out negative log-likelihood (``fm logp``,
``fm eval --nll``); the mathematics is :mod:`fmcore.core.likelihood`, the conventions docs/likelihood.md.

Discrete data (a data set with a ``bin_width``, e.g. digits: 17 levels, bins of 1/8 in [-1, 1]) is uniformly
dequantized, ``y = x + (u - 1/2) bin``, and its NLL is the bound ``-E log p(y) - D log(bin)`` on the discrete
log-probability (in nats); bits per dimension are ``NLL / (D ln 2)``. A Gaussian with the data's mean and full
covariance, fitted to (dequantized) training data, is scored on the same points as a baseline.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch
from torch import Tensor

from fmcore.core.dataset import ArrayDataset, Dataset
from fmcore.core.errors import FmError
from fmcore.core.likelihood import LikelihoodOptions, LogDensity, log_prob
from fmcore.core.noise import BLOCK
from fmcore.run.rundir import OpenedRun

#: training points used to fit the Gaussian baseline when the data set is not held in memory
BASELINE_POINTS = 20_000


def run_log_prob(run: OpenedRun, points: Tensor, options: LikelihoodOptions | None = None, *,
                 labels: Tensor | None = None, device=None, batch_size: int = 1024, dtype: torch.dtype | None = None,
                 grad: bool = False, progress=None) -> LogDensity:
    """``log p(x)`` of the run's model for ``points`` [N, *shape], in batches (results do not depend on
    ``batch_size``); ``labels`` [N] for a class-conditional network (``log p(x | label)``)."""
    c = run.components
    info = c.network.info
    if tuple(points.shape[1:]) != tuple(info.shape):
        raise FmError(f"points of shape {tuple(points.shape[1:])} per point do not match the run's data shape "
                      f"{tuple(info.shape)}; pass an array [N, {', '.join(map(str, info.shape))}]")
    if info.num_classes and labels is None:
        raise FmError(f"this model is class-conditional ({info.num_classes} classes): its density is p(x | label), "
                      f"so give a label per point (--labels FILE.npy, or labels=... in Python)")
    if points.shape[0] == 0:
        raise FmError("no points given: the array is empty")
    device = torch.device(device) if device is not None else torch.device("cpu")
    own = next((p.dtype for p in c.network.parameters()), None)
    dtype = dtype or own or points.dtype  # a network without parameters (oracle) computes in the points' dtype
    c.network.to(device=device, dtype=dtype)
    field = c.field()
    batch_size = max(BLOCK, -(-batch_size // BLOCK) * BLOCK)
    parts = []
    try:
        for start in range(0, points.shape[0], batch_size):
            x = points[start:start + batch_size].to(device=device, dtype=dtype)
            chunk = field
            if labels is not None:
                cond = labels[start:start + batch_size].to(device)
                chunk = field.with_condition(cond, torch.full_like(cond, info.null_label), 1.0)
            parts.append(log_prob(chunk, x, options, start=start, grad=grad))
            if progress is not None:
                progress(x.shape[0])
    finally:
        if own is not None and own != dtype:
            c.network.to(dtype=own)  # leave the run's network as it was (sampling expects its own dtype)
    return LogDensity(*(torch.cat([getattr(p, f) for p in parts]) for f in ("logp", "stderr", "prior", "delta",
                                                                              "noise", "nfe")),
                      parts[0].t, parts[0].divergence)


def dequantize(x: Tensor, bin_width: float | None, seed: int) -> Tensor:
    """``x + (u - 1/2) bin_width`` with ``u ~ U[0, 1)^D`` seeded (``x`` itself for continuous data)."""
    if bin_width is None:
        return x
    g = torch.Generator().manual_seed(seed)
    return x + (torch.rand(x.shape, generator=g, dtype=x.dtype) - 0.5) * bin_width


def gaussian_baseline(dataset: Dataset, points: Tensor, bin_width: float | None, seed: int) -> Tensor:
    """``log N(points; mean, cov)`` [N] with the mean and full covariance of (dequantized) training data."""
    if isinstance(dataset, ArrayDataset):
        train = dataset.data.double()
    else:
        train = dataset.sample(BASELINE_POINTS, torch.Generator().manual_seed(seed)).x.double()
    train = dequantize(train, bin_width, seed + 7).flatten(1)
    mean = train.mean(0)
    cov = torch.cov(train.T).reshape(train.shape[1], train.shape[1])
    cov = cov + 1e-9 * torch.eye(cov.shape[0], dtype=cov.dtype) * float(cov.diagonal().mean())
    gauss = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)
    return gauss.log_prob(points.double().flatten(1))


@attrs.frozen
class NLLReport:
    """Held-out NLL (nats per point and bits per dimension, each with a 95 % confidence interval over points)
    beside a fitted Gaussian; ``render()`` is the table ``fm eval --nll`` prints."""

    header: str
    values: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def render(self) -> str:
        v = self.values
        dq = f"uniform dequantization, bin {v['bin_width']:g}" if v["bin_width"] else "continuous data"
        lines = [self.header,
                 f"held-out NLL, n = {v['n']}, D = {v['dims']} ({dq}; density at t = {v['t']:g}, divergence "
                 f"{v['divergence']}, {v['nfe_mean']:.1f} evaluations per point on average, at most {v['nfe_max']})",
                 f"{'':<22}{'nats':>12}{'+-95%':>10}{'bits/dim':>12}{'+-95%':>10}"]
        for name, key in (("model", "model"), ("Gaussian (mean, cov)", "gaussian")):
            lines.append(f"{name:<22}{v[key + '_nll']:>12.4f}{v[key + '_nll_ci']:>10.4f}{v[key + '_bpd']:>12.4f}"
                         f"{v[key + '_bpd_ci']:>10.4f}")
        if v["divergence"] == "hutchinson":
            lines.append(f"Hutchinson standard error per point: {v['stderr_mean']:.4f} nats on average")
        return "\n".join(lines)


def nll(run: OpenedRun, n: int, options: LikelihoodOptions | None = None, *, seed: int = 0, device=None,
        batch_size: int = 1024, dtype: torch.dtype | None = None, progress=None) -> NLLReport:
    """NLL of ``n`` held-out points (``dataset.reference``), dequantized where the data is discrete."""
    dataset = run.components.dataset
    ref = dataset.reference(n, seed=seed + 1_000_003)
    bin_width = dataset.bin_width()
    points = dequantize(ref.x.double(), bin_width, seed)
    result = run_log_prob(run, points, options, labels=ref.labels if run.components.network.info.num_classes else
                          None, device=device, batch_size=batch_size, dtype=dtype, progress=progress)
    dims = points[0].numel()
    shift = -dims * math.log(bin_width) if bin_width else 0.0
    out: dict[str, Any] = {"n": n, "dims": dims, "bin_width": bin_width, "t": result.t,
                           "divergence": result.divergence, "nfe_mean": float(result.nfe.double().mean()),
                           "nfe_max": int(result.nfe.max()), "stderr_mean": float(result.stderr.mean())}
    baseline = gaussian_baseline(dataset, points, bin_width, seed)
    for key, logp in (("model", result.logp.detach().double().cpu()), ("gaussian", baseline)):
        per_point = -logp + shift
        half = 1.96 * float(per_point.std()) / math.sqrt(n) if n > 1 else float("nan")
        out[f"{key}_nll"], out[f"{key}_nll_ci"] = float(per_point.mean()), half
        out[f"{key}_bpd"], out[f"{key}_bpd_ci"] = float(per_point.mean()) / (dims * math.log(2)), \
            half / (dims * math.log(2))
    header = f"{run.directory} ({run.weights.name})"
    return NLLReport(header, out)
