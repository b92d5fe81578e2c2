"""dopri5 (per-sample adaptive Dormand–Prince 5(4)) against Heun on exact (oracle) Gaussian-mixture fields.

    python bench/adaptive.py [--n 256] [--dim 2 16]

Mixtures: 2D, 8 components of std 0.5 on the circle of radius 4; 16D, 6 components of std 0.5 with means
N(0, 4 I) (seeded). For each path (condot, vp, ve) the probability-flow ODE is integrated over the oracle's full
time range from the same ``n`` prior draws (float64). Endpoint error = distance to a dopri5 solution at
rtol = atol = 1e-12 (mean and max over samples). dopri5 at tolerances 1e-2 ... 1e-8 reports its mean and max
evaluations per sample; Heun runs 4 ... 2048 steps. The last column is the NFE Heun needs for dopri5's max
error (log-log interpolation between Heun runs).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from fmcore_paths.condot import CondOTOptions, CondOTPath
from fmcore_paths.ve import VEOptions, VEPath
from fmcore_paths.vp import VPOptions, VPPath
from fmcore_samplers.dopri5 import Dopri5, Dopri5Options
from fmcore_samplers.heun import Heun, HeunOptions

from fmcore.core.noise import BatchNoise
from fmcore.core.oracle import GaussianMixture, oracle_field

PATHS = {"condot": CondOTPath(CondOTOptions()), "vp": VPPath(VPOptions()), "ve": VEPath(VEOptions())}
TOLS = [1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8]
HEUN_STEPS = [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]


def mixture(dim: int) -> GaussianMixture:
    if dim == 2:
        angle = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return GaussianMixture.isotropic(4.0 * torch.stack([angle.cos(), angle.sin()], dim=1), 0.5)
    g = torch.Generator().manual_seed(16)
    return GaussianMixture.isotropic(2.0 * torch.randn(6, dim, generator=g, dtype=torch.float64), 0.5)


def errors(x: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    d = (x - ref).norm(dim=1)
    return float(d.mean()), float(d.max())


def heun_nfe_for(err: float, heun: list[tuple[int, float]]) -> float:
    """NFE Heun needs for max error ``err``: log-log interpolation between its runs (nan outside them)."""
    nfe = np.log([h[0] for h in heun])
    e = np.log([h[1] for h in heun])
    for i in range(len(heun) - 1):
        if e[i] >= math.log(err) >= e[i + 1]:
            w = (math.log(err) - e[i]) / (e[i + 1] - e[i])
            return float(np.exp(nfe[i] + w * (nfe[i + 1] - nfe[i])))
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--dim", type=int, nargs="+", default=[2, 16])
    args = p.parse_args()
    torch.set_num_threads(1)
    for dim in args.dim:
        mix = mixture(dim)
        for name, path in PATHS.items():
            f = oracle_field(mix, path)
            noise = BatchNoise(0, 0, args.n, (dim,), "cpu", torch.float64)
            x0 = path.prior_sample(noise.randn())
            start = time.perf_counter()
            ref = Dopri5(Dopri5Options(rtol=1e-12, atol=1e-12, max_steps=100_000)).run(f, x0, noise)
            heun = []
            for steps in HEUN_STEPS:
                out = Heun(HeunOptions(steps=steps)).run(f, x0, noise)
                heun.append((out.nfe, errors(out.x, ref.x)[1], errors(out.x, ref.x)[0]))
            print(f"\n{dim}D, {name}, time range {f.time_range}, n = {args.n} (reference: {ref.nfe_mean:.0f} NFE)")
            print(f"{'dopri5 tol':>11}{'mean NFE':>10}{'max NFE':>9}{'mean err':>11}{'max err':>11}"
                  f"{'Heun NFE, same max err':>24}")
            for tol in TOLS:
                out = Dopri5(Dopri5Options(rtol=tol, atol=tol)).run(f, x0, noise)
                mean_err, max_err = errors(out.x, ref.x)
                print(f"{tol:>11.0e}{out.nfe_mean:>10.1f}{out.nfe_max:>9d}{mean_err:>11.2e}{max_err:>11.2e}"
                      f"{heun_nfe_for(max_err, heun):>24.0f}")
            print(f"{'Heun steps':>11}{'NFE':>10}{'':>9}{'mean err':>11}{'max err':>11}")
            for steps, (nfe, max_err, mean_err) in zip(HEUN_STEPS, heun, strict=True):
                print(f"{steps:>11d}{nfe:>10d}{'':>9}{mean_err:>11.2e}{max_err:>11.2e}")
            print(f"({time.perf_counter() - start:.1f}s)")


if __name__ == "__main__":
    main()
