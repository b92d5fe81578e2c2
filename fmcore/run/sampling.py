"""Drawing many samples from a field: seeded per sample, in chunks, optionally conditional."""

from __future__ import annotations

import torch
from torch import Tensor

from fmcore.core.field import Field
from fmcore.core.noise import BLOCK, BatchNoise
from fmcore.core.path import ProbabilityPath
from fmcore.core.sampler import Sampler, SampleResult


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
    source: str | None = None,
) -> SampleResult:
    """``n`` samples of ``shape``. Sample ``i`` depends only on ``(seed, i)`` (and its label), never on
    ``batch_size``, which is rounded up to a multiple of the noise block (64).

    ``labels`` [n] makes the samples conditional, with classifier-free ``guidance`` (default: the sampler's
    ``guidance`` option, else 1); ``trajectory = k``
    also returns the paths of the first ``k`` samples, shape [steps + 1, k, *shape]. ``source`` ('iid' or
    'sobol'; default: the sampler's ``source`` option) is where the prior draws come from.
    """
    path: ProbabilityPath = field.path
    if guidance is None:
        guidance = float(getattr(sampler.options, "guidance", 1.0))
    if source is None:
        source = getattr(sampler.options, "source", "iid")
    device = torch.device(device) if device is not None else torch.device("cpu")
    batch_size = max(BLOCK, -(-batch_size // BLOCK) * BLOCK)
    outs, traj, nfe = [], None, 0
    for start in range(0, n, batch_size):
        count = min(batch_size, n - start)
        noise = BatchNoise(seed, start, count, shape, device, source=source)
        chunk_field = field
        if labels is not None:
            cond = labels[start:start + count].to(device)
            chunk_field = field.with_condition(cond, torch.full_like(cond, null_label), guidance)
        x0 = path.prior_sample(noise.prior())
        want_traj = trajectory > 0 and start == 0
        result = sampler.run(chunk_field, x0, noise, trajectory=want_traj)
        outs.append(result.x)
        nfe = result.nfe
        if want_traj:
            traj = result.trajectory[:, :trajectory]
        if progress is not None:
            progress(count)
    return SampleResult(torch.cat(outs), traj, nfe)


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
