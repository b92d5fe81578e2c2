"""Sampling spread over processes (``torchrun`` / ``accelerate launch``): whole noise blocks per process.

Sample ``i`` depends only on ``(seed, i)`` (:mod:`fmcore.core.noise`), so the ``ceil(n / 64)`` noise blocks
can be shared out: process ``r`` of ``W`` draws the contiguous blocks ``[r B / W, (r + 1) B / W)`` (integer
division, ``B`` blocks), the pieces are gathered on every process in rank order and the result is the
one a single process draws. Only the main process writes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import attrs
import torch
import torch.distributed as dist
from torch import Tensor

from fmcore.core.noise import BLOCK


@attrs.frozen
class Processes:
    """This process's ``rank`` among ``world`` processes that share one sampling job."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, n: int) -> tuple[int, int]:
        """``(start, count)``: the samples of this process, whole blocks of :data:`BLOCK` (the last one may be
        cut short at ``n``); a process may get none when there are fewer blocks than processes."""
        return share(n, self.rank, self.world)


def share(n: int, rank: int, world: int) -> tuple[int, int]:
    """Samples ``start .. start + count - 1`` of ``n`` for process ``rank`` of ``world``: contiguous whole blocks."""
    blocks = -(-n // BLOCK)
    start = min(n, rank * blocks // world * BLOCK)
    end = min(n, (rank + 1) * blocks // world * BLOCK)
    return start, end - start


def several() -> bool:
    """Whether this process is one of several (``WORLD_SIZE > 1``: torchrun, accelerate launch)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def import_dynamo() -> None:
    """Import TorchDynamo now, before a process group exists. torch imports it lazily (meta-device kernels,
    ``torch.func``), and imported while a group exists it keeps references to that group: the group then
    outlives ``destroy_process_group``, and its gloo threads outlive the interpreter, where destroying a
    finished collective's tensors needs the GIL and aborts the process ("terminate called without an active
    exception"). Imported first, it holds none. About 0.7 s, paid by launches of several processes only."""
    import torch._dynamo.utils  # noqa: F401


@contextlib.contextmanager
def launched(device: torch.device) -> Iterator[Processes]:
    """The processes of this launch: ``Processes()`` when alone; under ``torchrun`` / ``accelerate launch``
    (``WORLD_SIZE > 1`` in the environment) the default process group, started here if it is not yet (gloo on
    the CPU, NCCL on CUDA). On a normal exit every process waits for the others (the main one still writes)
    and a group started here is destroyed: a process that leaves with its group alive can abort at interpreter
    exit ("terminate called without an active exception") while the others work."""
    if not several():
        yield Processes()
        return
    started = not dist.is_initialized()
    if started:
        import_dynamo()
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield Processes(dist.get_rank(), dist.get_world_size())
        dist.barrier()
    finally:
        if started:
            dist.destroy_process_group()


def local_device(device: torch.device, processes: Processes) -> torch.device:
    """Each process's own GPU (``cuda:LOCAL_RANK``) when several share ``cuda`` without an index."""
    if device.type != "cuda" or processes.world == 1 or device.index is not None:
        return device
    local = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    torch.cuda.set_device(local)
    return local


def gather_samples(x: Tensor, n: int, processes: Processes) -> Tensor:
    """Every process's ``x`` (its :meth:`Processes.share` of ``n`` samples), concatenated in rank order, on
    every process. Pieces are padded to the largest share for the collective and cut back after it."""
    if processes.world == 1:
        return x
    counts = [share(n, r, processes.world)[1] for r in range(processes.world)]
    width = max(counts)
    padded = x.new_zeros((width, *x.shape[1:]))
    padded[: x.shape[0]] = x
    pieces = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(pieces, padded.contiguous())
    return torch.cat([piece[:count] for piece, count in zip(pieces, counts, strict=True)])


def reduce_stats(total: float, largest: int, processes: Processes) -> tuple[float, int]:
    """(sum of ``total``, max of ``largest``) over the processes (the network-evaluation counts)."""
    if processes.world == 1:
        return total, largest
    values = torch.tensor([total, float(largest)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        values = values.cuda()
    summed, maxed = values.clone(), values.clone()
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    dist.all_reduce(maxed, op=dist.ReduceOp.MAX)
    return float(summed[0]), int(maxed[1])
