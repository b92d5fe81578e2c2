"""Seeded noise that does not depend on how samples are split into batches.

Sample ``i`` of a sampling run draws all its randomness from the generator of block ``i // BLOCK``,
seeded from ``(seed, block)``. Batches are whole blocks, so ``--batch-size`` never changes the samples.
"""

from __future__ import annotations

import torch
from torch import Tensor

BLOCK = 64
_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant used to spread (seed, block) over 63-bit seeds


def block_seed(seed: int, block: int) -> int:
    """A 63-bit generator seed for ``block`` of a run seeded with ``seed``."""
    return (seed * _MIX + block * 0xBF58476D1CE4E5B9 + 1) % (2**63 - 1)


class BatchNoise:
    """Standard normal draws for samples ``start .. start + count - 1`` of a run (``start % BLOCK == 0``).

    Every call to :meth:`randn` draws one tensor of shape ``[count, *shape]`` and advances all blocks in
    lockstep, so the ``k``-th draw for a sample is the same whatever batch it is in.
    """

    def __init__(self, seed: int, start: int, count: int, shape: tuple[int, ...], device, dtype=torch.float32):
        if start % BLOCK:
            raise ValueError(f"batches must start at a multiple of {BLOCK}, got {start}")
        self.count, self.shape, self.device, self.dtype = count, tuple(shape), torch.device(device), dtype
        first, last = start // BLOCK, (start + count - 1) // BLOCK
        self.generators = []
        for block in range(first, last + 1):
            g = torch.Generator(device=self.device)
            g.manual_seed(block_seed(seed, block))
            self.generators.append(g)

    def randn(self) -> Tensor:
        """The next standard normal tensor of shape ``[count, *shape]``."""
        draws = [
            torch.randn((BLOCK, *self.shape), generator=g, device=self.device, dtype=self.dtype)
            for g in self.generators
        ]
        out = draws[0] if len(draws) == 1 else torch.cat(draws)
        return out[: self.count]
