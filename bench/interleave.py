"""Timing two step functions interleaved in one process, so that machine load affects both alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved(ours: Callable[[], object], theirs: Callable[[], object], blocks: int, steps: int,
                warmup: int = 5) -> tuple[float, float, float]:
    """Median over ``blocks`` of (time of ``steps`` calls of ``ours`` / the same for ``theirs``), run one block
    after the other; returns (median ratio, ours ms per call, theirs ms per call)."""
    for _ in range(warmup):
        ours()
        theirs()
    ratios, a, b = [], [], []
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(steps):
            ours()
        t1 = time.perf_counter()
        for _ in range(steps):
            theirs()
        t2 = time.perf_counter()
        a.append((t1 - t0) / steps)
        b.append((t2 - t1) / steps)
        ratios.append(a[-1] / b[-1])
    return statistics.median(ratios), 1e3 * statistics.median(a), 1e3 * statistics.median(b)
