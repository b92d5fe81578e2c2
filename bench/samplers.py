"""Endpoint error versus NFE of Euler and Heun on exact (oracle) Gaussian-mixture fields, per path and grid.

    python bench/samplers.py [--n 256] [--std 0.5 0.05]

For each path (condot, vp, ve), time grid (uniform, data, angle) and component std, integrates the oracle's
probability-flow ODE from the same exact draws of p_{t_lo} (float64) and reports the mean distance of the
endpoints to a 2,048-step Heun reference on the same grid kind, and the fitted order (log-log slope, NFE 8..128).
On the 'angle' grid Heun (and its reference) integrates in the angle variables (``variable = "angle"``,
fmcore/angle.py); Euler stays in t. A second table compares Heun at NFE 16 with Euler at NFE 64, and
``--random K`` repeats that comparison on K random mixtures (2 to 8 components of std 0.5, means N(0, 4 I)).
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

from fmcore import Prediction, SamplerOptions, choice
from fmcore.core.noise import BatchNoise
from fmcore.core.oracle import GaussianMixture, oracle_field

NFES = [8, 16, 32, 64, 128]
MEANS = torch.tensor([[3.0, 0.0], [-1.5, 2.6], [-1.5, -2.6], [0.0, 0.0]])
WEIGHTS = torch.tensor([0.3, 0.3, 0.2, 0.2])


PATHS = {"condot": CondOTPath(CondOTOptions()), "vp": VPPath(VPOptions()), "ve": VEPath(VEOptions())}


def oracle_problem(path, mix: GaussianMixture, n: int):
    """The mixture's exact velocity field on ``path``, ``n`` exact draws of ``p_{t_lo}`` and their noise."""
    f = oracle_field(mix, path, Prediction.VELOCITY, 1e-3)
    x0 = mix.at(path, f.time_range[0]).sample(n, torch.Generator().manual_seed(0))
    return f, x0, BatchNoise(0, 0, n, tuple(mix.shape), "cpu", torch.float64)


def endpoint_error(sampler, f, x0: torch.Tensor, noise: BatchNoise, ref: torch.Tensor) -> float:
    """Mean distance of ``sampler``'s endpoints from ``x0`` to the reference endpoints ``ref``."""
    return float((sampler.run(f, x0, noise).x - ref).norm(dim=1).mean())


def errors(path, mix: GaussianMixture, grid: str, n: int) -> dict[str, list[float]]:
    f, x0, noise = oracle_problem(path, mix, n)
    variable = "angle" if grid == "angle" else "t"
    ref = Heun(HeunOptions(steps=2048, grid=choice("grid", grid), variable=variable)).run(f, x0, noise).x
    samplers = {"euler": lambda steps: Euler(SamplerOptions(steps=steps, grid=choice("grid", grid))),
                "heun": lambda steps: Heun(HeunOptions(steps=steps, grid=choice("grid", grid), variable=variable))}
    return {name: [endpoint_error(make(nfe // (2 if name == "heun" else 1)), f, x0, noise, ref) for nfe in NFES]
            for name, make in samplers.items()}


def random_mixtures(k: int, n: int) -> None:
    """On ``k`` random std-0.5 mixtures, count where Heun at NFE 16 beats Euler at NFE 64 (errors as above)."""
    gen = torch.Generator().manual_seed(123)
    wins = {name: {"heun t < euler t": 0, "heun angle < euler t": 0, "heun angle < euler t, angle grid": 0}
            for name in PATHS}
    for _ in range(k):
        size = int(torch.randint(2, 9, (1,), generator=gen))
        means = 2.0 * torch.randn(size, 2, generator=gen)
        weights = torch.rand(size, generator=gen) + 0.2
        mix = GaussianMixture.isotropic(means, 0.5, weights / weights.sum())
        for name, path in PATHS.items():
            f, x0, noise = oracle_problem(path, mix, n)
            ref = Heun(HeunOptions(steps=1024, grid=choice("grid", "angle"), variable="angle")).run(f, x0, noise).x
            angle = choice("grid", "angle")
            heun_t, heun_a, euler_t, euler_a = (
                endpoint_error(s, f, x0, noise, ref)
                for s in (Heun(HeunOptions(steps=8)), Heun(HeunOptions(steps=8, grid=angle, variable="angle")),
                          Euler(SamplerOptions(steps=64)), Euler(SamplerOptions(steps=64, grid=angle))))
            wins[name]["heun t < euler t"] += heun_t < euler_t
            wins[name]["heun angle < euler t"] += heun_a < euler_t
            wins[name]["heun angle < euler t, angle grid"] += heun_a < euler_a
    print(f"Heun at NFE 16 beats Euler at NFE 64, out of {k} random mixtures (uniform grid unless stated)\n")
    print("| path | " + " | ".join(next(iter(wins.values()))) + " |")
    print("|---|" + "---|" * 3)
    for name, row in wins.items():
        print(f"| {name} | " + " | ".join(str(v) for v in row.values()) + " |")
    print()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--std", type=float, nargs="+", default=[0.5, 0.05])
    p.add_argument("--random", type=int, default=0, metavar="K", help="also compare on K random mixtures")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.random:
        random_mixtures(args.random, args.n)
    print(f"mixture: 4 components, means {MEANS.tolist()}, weights {WEIGHTS.tolist()}; {args.n} points; "
          "t_eps = 1e-3 where a path needs it\n")
    print("| std | path | grid | sampler | " + " | ".join(f"NFE {k}" for k in NFES) + " | order |")
    print("|---|---|---|---|" + "---|" * (len(NFES) + 1))
    start = time.perf_counter()
    table = {}
    for std in args.std:
        mix = GaussianMixture.isotropic(MEANS, std, WEIGHTS)
        for name, path in PATHS.items():
            for grid in ("uniform", "data", "angle"):
                for sampler, errs in errors(path, mix, grid, args.n).items():
                    table[std, name, grid, sampler] = errs
                    order = -np.polyfit(np.log(NFES), np.log(errs), 1)[0]
                    cells = " | ".join(f"{e:.2e}" for e in errs)
                    label = f"{sampler} (angle)" if sampler == "heun" and grid == "angle" else sampler
                    print(f"| {std} | {name} | {grid} | {label} | {cells} | {order:.2f} |", flush=True)
    i16, i64 = NFES.index(16), NFES.index(64)
    print("\nHeun at NFE 16 against Euler at NFE 64 (heun (angle): variable and grid 'angle')\n")
    print("| std | path | heun, uniform | heun (angle) | euler, uniform | euler, angle grid | heun (angle) wins |")
    print("|---|---|---|---|---|---|---|")
    for std in args.std:
        for name in PATHS:
            h_t, h_a = table[std, name, "uniform", "heun"][i16], table[std, name, "angle", "heun"][i16]
            e_u, e_a = table[std, name, "uniform", "euler"][i64], table[std, name, "angle", "euler"][i64]
            print(f"| {std} | {name} | {h_t:.3f} | {h_a:.3f} | {e_u:.3f} | {e_a:.3f} | "
                  f"{'yes' if h_a < min(e_u, e_a) else 'no'} |")
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
