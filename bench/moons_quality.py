"""The foundation issue's quality bar: train examples/recipes/moons.toml, then compare 2,000 samples with
2,000 fresh moons points by exact W2, against the floor between two independent fresh sets, averaged over
three draws. Target: ratio <= 1.35 (a perfect iid sampler scores about 1.15: make_moons spaces its angles
evenly, which makes the data-vs-data floor artificially low).

    python bench/moons_quality.py [--run-dir DIR] [--skip-train]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import make_moons

from fmcore.plugins.loading import get_registry
from fmcore.run.metrics import wasserstein2
from fmcore.run.rundir import open_run
from fmcore.run.sampling import generate


def moons(n: int, seed: int) -> np.ndarray:
    return make_moons(n, noise=0.2, random_state=seed)[0] * 3 - 1


def quality(run_dir: Path, n: int = 2000, draws: int = 3) -> tuple[float, list[float], list[float]]:
    run = open_run(run_dir, get_registry())
    c = run.components
    model, floor = [], []
    for d in range(draws):
        x = generate(c.field(), c.sampler, n, (2,), seed=100 + d).x
        model.append(wasserstein2(x, moons(n, 1000 + d)))
        floor.append(wasserstein2(moons(n, 2000 + d), moons(n, 3000 + d)))
    return float(np.mean(model) / np.mean(floor)), model, floor


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", default="runs/moons-quality")
    ap.add_argument("--skip-train", action="store_true")
    args = ap.parse_args()
    run_dir = Path(args.run_dir)
    if not args.skip_train:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "fmcore", "train", "examples/recipes/moons.toml", "--run-dir",
                        str(run_dir)], check=True)
        print(f"fm train: {time.perf_counter() - t0:.1f} s wall (incl. start-up and pictures)")
    torch.manual_seed(0)
    ratio, model, floor = quality(run_dir)
    print(f"W2 model vs fresh: {np.round(model, 4).tolist()}  floor: {np.round(floor, 4).tolist()}")
    print(f"ratio of means: {ratio:.3f} (target <= 1.35)")


if __name__ == "__main__":
    main()
