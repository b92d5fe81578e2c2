"""Drawing many samples from a field: seeded per sample, in chunks, optionally conditional."""

from __future__ import annotations

import torch
from torch import Tensor

from fmcore.core.errors import FmError
from fmcore.core.field import Field
from fmcore.core.network import DataInfo
from fmcore.core.noise import BLOCK, BatchNoise
from fmcore.core.path import ProbabilityPath
from fmcore.core.sampler import Sampler, SampleResult
from fmcore.recipe import preflight
from fmcore.run.distributed import Processes, gather_samples, reduce_stats


@torch.no_grad()
def generate(
    field: Field,
    sampler: Sampler,
    n: int,
    shape: tuple[int, ...],
    *,
    seed: int = 0,
    device=None,
    batch_size: int = 4096,
    labels: Tensor | None = None,
    null_label: int = 0,
    guidance: float | None = None,
    trajectory: int = 0,
    progress=None,
    memory_check: bool = True,
    source: str | None = None,
    processes: Processes | None = None,
) -> SampleResult:
    """``n`` samples of ``shape``. Sample ``i`` depends only on ``(seed, i)`` (and its label), never on
    ``batch_size``, which is rounded up to a multiple of the noise block (64).

    ``labels`` [n] makes the samples conditional, with classifier-free ``guidance`` (default: the sampler's
    ``guidance`` option, else 1); ``trajectory = k``
    also returns the paths of the first ``k`` samples, shape [steps + 1, k, *shape]. The memory preflight
    runs first (``memory_check=False`` skips it); non-finite samples are an error, never returned. ``source``
    ('iid' or 'sobol'; default: the sampler's ``source`` option) is where the prior draws come from.
    ``processes`` (several, under torchrun): each draws its whole noise blocks of the ``n``
    (:mod:`fmcore.run.distributed`) and every process gets all ``n`` samples, those one process would draw.
    """
    processes = processes or Processes()
    path: ProbabilityPath = field.path
    if guidance is None:
        guidance = float(getattr(sampler.options, "guidance", 1.0))
    if source is None:
        source = getattr(sampler.options, "source", "iid")
    device = torch.device(device) if device is not None else torch.device("cpu")
    batch_size = max(BLOCK, -(-batch_size // BLOCK) * BLOCK)
    info = DataInfo(tuple(shape), int(getattr(getattr(field.network, "info", None), "num_classes", 0)))
    first, mine = processes.share(n)
    preflight.check_sampling(field.network, info, n, min(batch_size, max(BLOCK, -(-mine // BLOCK) * BLOCK)), device,
                             memory_check)
    outs, traj, nfe_sum, nfe_max = [], None, 0.0, 0
    for start in range(first, first + mine, batch_size):
        count = min(batch_size, first + mine - start)
        noise = BatchNoise(seed, start, count, shape, device, source=source)
        chunk_field = field
        if labels is not None:
            cond = labels[start:start + count].to(device)
            chunk_field = field.with_condition(cond, torch.full_like(cond, null_label), guidance)
        x0 = path.prior_sample(noise.prior())
        want_traj = trajectory > 0 and start == 0
        result = sampler.run(chunk_field, x0, noise, trajectory=want_traj)
        outs.append(result.x)
        nfe_sum += result.nfe_mean * count
        nfe_max = max(nfe_max, result.nfe_max)
        if want_traj:
            traj = result.trajectory[:, :trajectory]
        if progress is not None:
            progress(count)
    x = torch.cat(outs) if outs else torch.empty((0, *shape), device=device)
    x = gather_samples(x, n, processes)
    nfe_sum, nfe_max = reduce_stats(nfe_sum, nfe_max, processes)
    check_finite(x)
    mean = nfe_sum / n if n else 0.0
    return SampleResult(x, traj, round(mean), mean, nfe_max)


class NonFiniteSamplesError(FmError):
    """Sampling produced NaN or infinite values."""


def check_finite(x: Tensor) -> None:
    """Raise :class:`NonFiniteSamplesError` with the count and the first index of non-finite samples."""
    bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
    count = int(bad.sum())
    if count:
        first = int(bad.nonzero()[0, 0])
        raise NonFiniteSamplesError(
            f"{count} of {x.shape[0]} samples hold NaN or inf values (the first is sample {first}); nothing was "
            "written. The network's weights may be non-finite (try --no-ema or an earlier checkpoint) or the "
            "sampler diverged (more steps, or another sampler)")


def balanced_labels(n: int, classes: list[int] | int) -> Tensor:
    """``n`` labels cycling through ``classes`` (a list, or ``range(classes)`` for an int): label ``i`` is
    ``classes[i % k]``, so every prefix is as balanced as possible."""
    classes = list(range(classes)) if isinstance(classes, int) else list(classes)
    return torch.tensor(classes, dtype=torch.long).repeat(-(-n // len(classes)))[:n]


def parse_classes(text: str, num_classes: int) -> list[int]:
    """``"K"``, ``"1,3"`` or ``"all"`` -> class indices, each checked against ``num_classes`` (ValueError)."""
    if num_classes == 0:
        raise ValueError("this model is unconditional (its network has no classes), so it cannot sample a class")
    if text.strip() == "all":
        return list(range(num_classes))
    try:
        classes = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--class {text!r}: expected a class index, a list like 1,3, or 'all'") from None
    bad = [k for k in classes if not 0 <= k < num_classes]
    if bad:
        raise ValueError(f"--class {text!r}: classes are 0 .. {num_classes - 1}; got {bad[0]}")
    return classes
