"""Memory preflight: estimate, before anything is allocated, what training a network or drawing samples needs,
and refuse with the numbers when the device does not have it.

The network is built on PyTorch's ``meta`` device (shapes, no storage) and run forward once there with hooks on
its leaf modules, which gives the parameter count and the activation sizes for a batch at no memory cost.

    training  ~ 4 bytes x parameters x (weights + gradients + 2 Adam moments [+ EMA]) + all activations
    sampling  ~ 4 bytes x (n x sample size x 2 + batch x sample size x 8) + 3 x the largest activation

A rough estimate: it exists to refuse requests that cannot fit (a 10^7-wide layer, a 10^9 batch), not to
predict the peak to the byte. ``FMCORE_SKIP_MEMORY_CHECK=1`` (or ``--skip-memory-check``) skips the check.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from fmcore.core.errors import FmError, size
from fmcore.core.network import DataInfo
from fmcore.core.options import Choice

SKIP_ENV = "FMCORE_SKIP_MEMORY_CHECK"
FLOAT = 4  # bytes of a float32


def skipped(memory_check: bool = True) -> bool:
    return not memory_check or os.environ.get(SKIP_ENV, "") not in ("", "0")


def available(device: torch.device) -> int:
    """Bytes the device can still give: free GPU memory, or the host's available memory."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    return int(psutil.virtual_memory().available)


def meta_network(choice: Choice, info: DataInfo) -> nn.Module | None:
    """The network of ``choice`` built on the meta device, or None when it cannot be built there (then the
    real build reports whatever is wrong with it)."""
    try:
        with torch.device("meta"):
            return choice.create(info)
    except Exception:  # noqa: BLE001 - an estimate only: the real build that follows raises the real error
        return None


@contextlib.contextmanager
def on_meta(net: nn.Module) -> Iterator[None]:
    """``net`` with every parameter and buffer swapped for a storage-less ``meta`` copy, restored on exit.

    A plain swap in the modules' own tables: ``torch.func.functional_call`` does the same but imports TorchDynamo
    (some 800 modules, seconds) on first use, and doing that under ``torchrun`` pins the process group for good
    (its threads then outlive the interpreter and abort the process at exit)."""
    saved = []
    for module in net.modules():
        for table in (module._parameters, module._buffers):
            for name, value in table.items():
                if value is not None:
                    saved.append((table, name, value))
                    table[name] = torch.empty_like(value, device="meta")
    try:
        yield
    finally:
        for table, name, value in reversed(saved):
            table[name] = value


def activations(net: nn.Module, info: DataInfo, batch: int) -> tuple[int, int] | None:
    """(sum, largest) bytes of the leaf modules' outputs in one forward pass on a batch, computed on the meta
    device; None when the network cannot run there."""
    sizes: list[int] = []

    def hook(_module, _inputs, output) -> None:
        outs = output if isinstance(output, tuple | list) else (output,)
        sizes.append(sum(o.numel() * o.element_size() for o in outs if isinstance(o, Tensor)))

    leaves = [m for m in net.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    args = [torch.empty((batch, *info.shape), device="meta"), torch.empty(batch, device="meta")]
    if info.num_classes:
        args.append(torch.zeros(batch, dtype=torch.long, device="meta"))
    try:
        with torch.no_grad(), on_meta(net):
            net(*args)
    except Exception:  # noqa: BLE001 - an estimate only: networks that cannot run on meta are not estimated
        return None
    finally:
        for h in handles:
            h.remove()
    return sum(sizes), max(sizes, default=0)


def _refuse(what: str, need: int, parts: str, device: torch.device, memory_check: bool, fix: str) -> None:
    if skipped(memory_check):
        return
    have = available(device)
    if need > have:
        raise FmError(f"{what} needs about {size(need)} ({parts}), but {device} has {size(have)} available; {fix}, "
                      f"or pass --skip-memory-check (or set {SKIP_ENV}=1) to try anyway")


def check_network(choice: Choice, info: DataInfo, where: str, *, training: bool, batch: int = 0, ema: bool = False,
                  device: torch.device | None = None, memory_check: bool = True) -> None:
    """Refuse a network that does not fit: its weights (``training``: with gradients, Adam state, EMA and the
    activations of a ``batch``)."""
    if skipped(memory_check):
        return
    net = meta_network(choice, info)
    if net is None:
        return
    params = sum(p.numel() for p in net.parameters())
    copies = (4 + int(ema)) if training else 1
    need = params * FLOAT * copies
    parts = f"{params:,} parameters x {FLOAT} bytes" + (
        f" x {copies} for weights, gradients, Adam's two moments{' and the EMA' if ema else ''}" if training else "")
    if training and batch:
        acts = activations(net, info, batch)
        if acts is not None:
            need += acts[0]
            parts += f", plus {size(acts[0])} of activations for a batch of {batch:,}"
    _refuse(f"{'training ' if training else ''}{where}", need, parts, device or torch.device("cpu"), memory_check,
            "use a smaller network or batch")


def check_sampling(net, info: DataInfo, n: int, batch: int, device: torch.device,
                   memory_check: bool = True) -> None:
    """Refuse drawing ``n`` samples in batches of ``batch`` when they do not fit on ``device`` (``net``: the
    field's network; its activations are estimated when it is a module)."""
    if skipped(memory_check):
        return
    per_sample = FLOAT * int(torch.Size(info.shape).numel())
    need = n * per_sample * 2 + batch * per_sample * 8
    parts = f"{n:,} samples of {size(per_sample)} twice, and a batch of {batch:,} in the sampler"
    acts = activations(net, info, batch) if isinstance(net, nn.Module) else None
    if acts is not None and acts[1]:
        need += 3 * acts[1]
        parts += f", plus {size(3 * acts[1])} of network activations"
    _refuse(f"drawing {n:,} samples", need, parts, device, memory_check,
            "ask for fewer (--n) or a smaller --batch-size")
