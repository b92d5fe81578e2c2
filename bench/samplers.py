"""Endpoint error versus NFE of Euler and Heun on exact (oracle) Gaussian-mixture fields, per path and grid.

    python bench/samplers.py [--n 256] [--std 0.5 0.05]

For each path (condot, vp, ve), time grid (uniform, data) and component std, integrates the oracle's
probability-flow ODE from the same exact draws of p_{t_lo} (float64) and reports the mean distance of the
endpoints to a 2,048-step Heun reference on the same grid kind, and the fitted order (log-log slope, NFE 8..128).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from fmcore_paths.condot import CondOTOptions, CondOTPath
from fmcore_paths.ve import VEOptions, VEPath
from fmcore_paths.vp import VPOptions, VPPath
from fmcore_samplers.euler import Euler
from fmcore_samplers.heun import Heun, HeunOptions

from fmcore import Prediction, SamplerOptions
from fmcore.noise import BatchNoise
from fmcore.oracle import GaussianMixture, oracle_field

NFES = [8, 16, 32, 64, 128]
MEANS = torch.tensor([[3.0, 0.0], [-1.5, 2.6], [-1.5, -2.6], [0.0, 0.0]])
WEIGHTS = torch.tensor([0.3, 0.3, 0.2, 0.2])


def errors(path, mix: GaussianMixture, grid: str, n: int) -> dict[str, list[float]]:
    f = oracle_field(mix, path, Prediction.VELOCITY, 1e-3)
    x0 = mix.at(path, f.time_range[0]).sample(n, torch.Generator().manual_seed(0))
    noise = BatchNoise(0, 0, n, tuple(mix.shape), "cpu", torch.float64)
    ref = Heun(HeunOptions(steps=2048, grid=grid)).run(f, x0, noise).x
    out = {}
    for cls, opts in ((Euler, SamplerOptions), (Heun, HeunOptions)):
        out[cls.__name__.lower()] = [
            float((cls(opts(steps=nfe // cls.evals_per_step, grid=grid)).run(f, x0, noise).x - ref)
                  .norm(dim=1).mean()) for nfe in NFES]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--std", type=float, nargs="+", default=[0.5, 0.05])
    args = p.parse_args()
    torch.set_num_threads(1)
    paths = {"condot": CondOTPath(CondOTOptions()), "vp": VPPath(VPOptions()), "ve": VEPath(VEOptions())}
    print(f"mixture: 4 components, means {MEANS.tolist()}, weights {WEIGHTS.tolist()}; {args.n} points; "
          "t_eps = 1e-3 where a path needs it\n")
    print("| std | path | grid | sampler | " + " | ".join(f"NFE {k}" for k in NFES) + " | order |")
    print("|---|---|---|---|" + "---|" * (len(NFES) + 1))
    start = time.perf_counter()
    for std in args.std:
        mix = GaussianMixture.isotropic(MEANS, std, WEIGHTS)
        for name, path in paths.items():
            for grid in ("uniform", "data"):
                for sampler, errs in errors(path, mix, grid, args.n).items():
                    order = -np.polyfit(np.log(NFES), np.log(errs), 1)[0]
                    cells = " | ".join(f"{e:.2e}" for e in errs)
                    print(f"| {std} | {name} | {grid} | {sampler} | {cells} | {order:.2f} |", flush=True)
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
