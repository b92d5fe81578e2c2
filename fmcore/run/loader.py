"""Streaming training batches from a :class:`~fmcore.core.dataset.MapDataset` through a PyTorch DataLoader.

The order is a pure function of ``(seed, epoch)``: epoch ``e`` visits the shards in a random order and the
items of each shard in a random order (generators seeded from ``(seed, e)``); that sequence is cut into
``world`` contiguous parts of ``floor(N / world)`` items and process ``r`` takes part ``r`` (disjoint items,
mostly disjoint shards; the remainder is left out of that epoch). A process's stream is its parts of epochs
0, 1, 2, ... one after the other, and micro-batch ``k`` is items ``k m .. (k + 1) m - 1`` of it. So the number
of micro-batches consumed is the whole state: it is saved with the checkpoint, and a resumed run (or a fresh
DataLoader) continues bit for bit. Worker processes only read items; they draw no random numbers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from fmcore.core.dataset import Batch, MapDataset
from fmcore.core.errors import FmError
from fmcore.core.noise import block_seed

#: key, in ``rng_<rank>.safetensors``, of the number of streamed micro-batches consumed
POSITION = "data_batches"


def epoch_order(shards: list[int], seed: int, epoch: int) -> torch.Tensor:
    """Every item index once: shards in a random order, each shard's items in a random order."""
    g = torch.Generator().manual_seed(block_seed(seed, 2**20 + epoch))
    starts = [0, *itertools.accumulate(shards)]
    parts = [starts[s] + torch.randperm(shards[s], generator=g) for s in torch.randperm(len(shards), generator=g)]
    return torch.cat(parts)


def process_part(shards: list[int], seed: int, epoch: int, rank: int, world: int) -> torch.Tensor:
    """Process ``rank``'s contiguous part of epoch ``epoch`` (``floor(N / world)`` items)."""
    size = sum(shards) // world
    return epoch_order(shards, seed, epoch)[rank * size:(rank + 1) * size]


class EpochBatches:
    """Micro-batches of indices of one process's stream (see the module docstring), from batch ``start`` on."""

    def __init__(self, shards: list[int], micro: int, seed: int, rank: int = 0, world: int = 1, start: int = 0):
        if sum(shards) // world == 0:
            raise FmError(f"the data set has {sum(shards)} items, fewer than the {world} processes that share it")
        self.shards, self.micro, self.seed, self.rank, self.world, self.start = shards, micro, seed, rank, world, start
        self.per_epoch = sum(shards) // world

    def __iter__(self) -> Iterator[list[int]]:
        first = self.start * self.micro  # position in this process's stream
        epoch, offset = divmod(first, self.per_epoch)
        part = process_part(self.shards, self.seed, epoch, self.rank, self.world)
        pending: list[torch.Tensor] = []
        have = 0
        while True:
            take = part[offset:]
            pending.append(take)
            have += take.shape[0]
            while have >= self.micro:
                flat = torch.cat(pending)
                yield flat[: self.micro].tolist()
                rest = flat[self.micro:]
                pending, have = [rest], rest.shape[0]
            epoch, offset = epoch + 1, 0
            part = process_part(self.shards, self.seed, epoch, self.rank, self.world)


class _Items(TorchDataset):
    """The DataLoader's view of a MapDataset: item ``i`` as (float32 tensor, label)."""

    def __init__(self, dataset: MapDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        x, label = self.dataset.item(i)
        return torch.from_numpy(x), label


class BatchStream:
    """Training micro-batches of a streaming data set on ``device``; :attr:`consumed` is the position saved in
    checkpoints (a stream built with ``start = consumed`` continues exactly)."""

    def __init__(self, dataset: MapDataset, micro: int, seed: int, device: torch.device, *, rank: int = 0,
                 world: int = 1, start: int = 0, workers: int = 2):
        self.dataset, self.device, self.consumed = dataset, device, start
        self.labelled = bool(dataset.info.num_classes)
        sampler = EpochBatches(dataset.shard_sizes(), micro, seed, rank, world, start)
        pin = device.type == "cuda"
        # its own generator: starting an iterator draws the workers' base seed, which must not advance torch's
        # global generator (the training randomness, restored on resume); the workers draw nothing with it
        self.loader = DataLoader(_Items(dataset), batch_sampler=sampler, num_workers=workers, pin_memory=pin,
                                 persistent_workers=workers > 0, prefetch_factor=4 if workers else None,
                                 generator=torch.Generator().manual_seed(seed))
        self._it = iter(self.loader)

    def next(self) -> Batch:
        """The next micro-batch, moved to the device (non-blocking from pinned memory on a GPU), augmented in
        this process with torch's global generator (saved in checkpoints)."""
        x, labels = next(self._it)
        self.consumed += 1
        nb = self.device.type == "cuda"
        batch = Batch(x.to(self.device, non_blocking=nb), labels.to(self.device, non_blocking=nb) if self.labelled
                      else None)
        return self.dataset.augment(batch)
