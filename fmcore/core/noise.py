"""Seeded noise that does not depend on how samples are split into batches.

Sample ``i`` of a sampling run draws all its randomness from the generator of block ``i // BLOCK``,
seeded from ``(seed, block)``. Batches are whole blocks, so ``--batch-size`` never changes the samples.

The prior draw can instead come from a quasi-random source (``source = "sobol"``): point ``i`` of one
scrambled Sobol sequence in ``[0, 1)^d`` per seed (``d = prod(shape)``), mapped through the inverse normal CDF.
Point ``i`` is reached by fast-forwarding the sequence to ``i``, so it too depends only on ``(seed, i)``.
The first ``n`` points of a Sobol sequence fill the cube far more evenly than iid draws (discrepancy
``O((log n)^d / n)`` instead of ``O(n^-1/2)``); the samples' law is unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

BLOCK = 64
SOURCES = ("iid", "sobol")
_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant used to spread (seed, block) over 63-bit seeds


def block_seed(seed: int, block: int) -> int:
    """A 63-bit generator seed for ``block`` of a run seeded with ``seed``."""
    return (seed * _MIX + block * 0xBF58476D1CE4E5B9 + 1) % (2**63 - 1)


class BatchNoise:
    """Standard normal draws for samples ``start .. start + count - 1`` of a run (``start % BLOCK == 0``).

    Every call to :meth:`randn` draws one tensor of shape ``[count, *shape]`` and advances all blocks in
    lockstep, so the ``k``-th draw for a sample is the same whatever batch it is in.
    """

    def __init__(self, seed: int, start: int, count: int, shape: tuple[int, ...], device, dtype=torch.float32,
                 source: str = "iid"):
        if start % BLOCK:
            raise ValueError(f"batches must start at a multiple of {BLOCK}, got {start}")
        if source not in SOURCES:
            raise ValueError(f"unknown noise source {source!r}; sources: {', '.join(SOURCES)}")
        self.count, self.shape, self.device, self.dtype = count, tuple(shape), torch.device(device), dtype
        self.seed, self.start, self.source = seed, start, source
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

    def prior(self) -> Tensor:
        """The standard normal draw the prior is made from: the first :meth:`randn`, or with ``source =
        "sobol"`` the Sobol points ``start .. start + count - 1`` through the inverse normal CDF (the generators
        advance as for ``iid``, so later draws, e.g. an SDE sampler's, are the same for both sources)."""
        eps = self.randn()
        if self.source == "iid":
            return eps
        return sobol_normal(self.seed, self.start, self.count, self.shape).to(self.device, self.dtype)


#: SobolEngine's largest dimension
SOBOL_MAX_DIM = 21201


def sobol_normal(seed: int, start: int, count: int, shape: tuple[int, ...]) -> Tensor:
    """Points ``start .. start + count - 1`` of the scrambled Sobol sequence of ``seed`` (dimension
    ``prod(shape)``), mapped to N(0, I) by the inverse normal CDF ``Phi^-1(u)``; float64, shape [count, *shape]."""
    dim = math.prod(shape)
    if dim > SOBOL_MAX_DIM:
        raise ValueError(f"a Sobol source has at most {SOBOL_MAX_DIM} dimensions; samples of shape {tuple(shape)} "
                         f"have {dim}; use source = 'iid'")
    engine = torch.quasirandom.SobolEngine(dim, scramble=True, seed=block_seed(seed, -1) % (2**31 - 1))
    if start:
        engine.fast_forward(start)
    u = engine.draw(count, dtype=torch.float64)
    tiny = torch.finfo(torch.float64).eps
    return torch.special.ndtri(u.clamp(tiny, 1 - tiny)).view(count, *shape)
