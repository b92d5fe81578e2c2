"""A trained model sampled along other Gaussian paths (the exact schedule transform), fine and in few steps.

    python bench/fast_paths.py RUN_DIR [--n 2000] [--paths condot vp ve cosine]

For each path B: W2 between samples along B and the untransformed samples (both with 200 UniPC steps of order 3,
same seed: the transform is exact, so this is solver and prior error only), and W2 to fresh data at NFE 5, 10, 20
with `unipc` at its defaults; the floor is W2 between two fresh data draws of the same size.
"""

from __future__ import annotations

import argparse
import time

import torch

import fmcore
from fmcore.core.errors import FmError
from fmcore.run.metrics import wasserstein2

NFES = [5, 10, 20]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--paths", nargs="+", default=["condot", "vp", "ve", "cosine"])
    args = p.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    run = fmcore.load_run(args.run_dir)
    data = run.components.dataset
    floor = wasserstein2(data.reference(args.n, seed=11).x, data.reference(args.n, seed=12).x)
    truth = data.reference(args.n, seed=13).x
    plain = run.sample(args.n, "unipc", order=3, steps=200, device="cpu")
    print(f"run {args.run_dir} (path {run.recipe.path.name}), n = {args.n}; data-vs-data W2 floor {floor:.3f}; "
          f"untransformed (unipc 3, 200 steps) W2 to data {wasserstein2(plain, truth):.3f}\n")
    print("| path | W2 to untransformed, 200 steps | " + " | ".join(f"W2 to data, NFE {k}" for k in NFES) + " |")
    print("|---|---|" + "---|" * len(NFES))
    for name in args.paths:
        try:
            fine = run.sample(args.n, "unipc", order=3, steps=200, device="cpu", path=name)
        except FmError as exc:
            print(f"| {name} | {exc} |")
            continue
        few = [wasserstein2(run.sample(args.n, "unipc", steps=k, device="cpu", path=name), truth) for k in NFES]
        print(f"| {name} | {wasserstein2(fine, plain):.4f} | " + " | ".join(f"{w:.3f}" for w in few) + " |",
              flush=True)
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
