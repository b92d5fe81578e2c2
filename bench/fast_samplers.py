"""Few-step samplers on the exact field of a Gaussian mixture: endpoint error versus NFE, per sampler and grid.

    python bench/fast_samplers.py [--n 256] [--random 20] [--orders] [--select 40] [--no-tables]

The mixture: 8 components of std 0.5 on the circle of radius 4 (float64). For VP (beta 0.1 -> 20) and CondOT,
the exact data-prediction oracle (time range [0, 1]: both ends included) is integrated from exact draws of
p_0 to t = 1 by every sampler x grid at NFE 5, 8, 10, 15, 20, 25; the error is the mean distance of the
endpoints to fmcore.core.oracle.reference_flow (RK4 in the angle variables with the exact data and noise
predictions, 1,000 steps; 1,000 and 2,000 steps differ by ~1e-12). ``--orders`` fits log-log slopes on NFE
50..400 (logsnr grid, on [0, 1] and on [0.01, 0.99]); ``--random K`` compares, on K random std-0.5
mixtures on VP, few-step samplers at NFE 16 with Euler at NFE 64 (bench/samplers.py's comparison); ``--select K``
compares adams settings on K random CondOT mixtures (how its defaults were chosen; the ring only validates).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from fmcore_paths.condot import CondOTOptions, CondOTPath
from fmcore_paths.vp import VPOptions, VPPath
from fmcore_samplers.adams import Adams, AdamsOptions
from fmcore_samplers.ddim import DDIM, DDIMOptions
from fmcore_samplers.dpm_solver_pp import DPMSolverOptions, DPMSolverPP
from fmcore_samplers.edm import EDM, EDMOptions
from fmcore_samplers.euler import Euler
from fmcore_samplers.unipc import UniPC, UniPCOptions

from fmcore import Field, Prediction, SamplerOptions, choice
from fmcore.core.noise import BatchNoise
from fmcore.core.oracle import GaussianMixture, Oracle, oracle_field, reference_flow

NFES = [5, 8, 10, 15, 20, 25]
ORDER_NFES = [50, 100, 200, 400]
#: grid name -> (registered grid, its options)
GRIDS = {"uniform": ("uniform", {}), "logsnr": ("logsnr", {}), "karras": ("karras", {}), "angle": ("angle", {}),
         "data": ("data", {}), "data rho 1.25": ("data", {"rho": 1.25}), "data rho 1.1": ("data", {"rho": 1.1})}
#: the issue's table: the best of diffusers' solvers (DDIM, DPM-Solver++ 2M/3M, UniPC 2/3) at each NFE
DIFFUSERS = {"vp": [0.187, 0.143, 0.123, 0.067, 0.029, 0.017], "condot": [0.136, 0.047, 0.019, 0.0072, 0.0019, 0.00064]}
PATHS = {"vp": VPPath(VPOptions()), "condot": CondOTPath(CondOTOptions())}


def ring(std: float = 0.5) -> GaussianMixture:
    angle = torch.linspace(0, 2 * math.pi, 9, dtype=torch.float64)[:-1]
    return GaussianMixture.isotropic(torch.stack([4 * angle.cos(), 4 * angle.sin()], 1), std)


def samplers(grid: str) -> dict:
    """label -> (NFE -> sampler); "time": the data prediction interpolated in t instead of log-SNR."""
    name, options = GRIDS[grid]
    g = choice("grid", name, **options)
    table = {"ddim": lambda n: DDIM(DDIMOptions(steps=n, grid=g))}
    for order, how in ((2, "log_snr"), (3, "log_snr"), (2, "time"), (3, "time")):
        table[f"dpm_solver_pp {order}M" + (" time" if how == "time" else "")] = (
            lambda n, o=order, i=how: DPMSolverPP(DPMSolverOptions(steps=n, order=o, grid=g, interpolation=i)))
    for order, how in ((1, "log_snr"), (2, "log_snr"), (3, "log_snr"), (1, "time"), (2, "time"), (3, "time")):
        table[f"unipc {order}" + (" time" if how == "time" else "")] = (
            lambda n, o=order, i=how: UniPC(UniPCOptions(steps=n, order=o, grid=g, interpolation=i)))
    # Heun's last evaluation would be VP's velocity at t = 1 (infinite d_beta): Euler last, NFE = 2 steps - 1 <= n
    table["edm (heun)"] = lambda n: EDM(EDMOptions(steps=(n + 1) // 2, euler_last=True, grid=g))
    for order, variable in ((2, "t"), (3, "t"), (4, "t"), (3, "angle"), (4, "angle")):
        table[f"adams {order}" + (" angle" if variable == "angle" else "")] = (
            lambda n, o=order, v=variable: Adams(AdamsOptions(steps=n, order=o, variable=v, grid=g)))
    return table


def problem(mix: GaussianMixture, path, n: int):
    field = oracle_field(mix, path, Prediction.DATA, 0.0)  # range [0, 1]: the data prediction is finite there
    x0 = mix.at(path, 0.0).sample(n, torch.Generator().manual_seed(0))
    return field, x0, BatchNoise(0, 0, n, tuple(mix.shape), "cpu", torch.float64)


def error(sampler, field, x0, noise, ref) -> float:
    return float((sampler.run(field, x0, noise).x - ref).norm(dim=1).mean())


def tables(n: int) -> None:
    mix = ring()
    for name, path in PATHS.items():
        field, x0, noise = problem(mix, path, n)
        ref = reference_flow(mix, path, x0)
        print(f"\n### {name}\n\n| grid | sampler | " + " | ".join(f"NFE {k}" for k in NFES) + " |")
        print("|---|---|" + "---|" * len(NFES))
        best, who = [math.inf] * len(NFES), [""] * len(NFES)
        for grid in GRIDS:
            for sname, make in samplers(grid).items():
                errs = [error(make(k), field, x0, noise, ref) for k in NFES]
                who = [f"{sname}, {grid}" if e < b else w for b, e, w in zip(best, errs, who, strict=True)]
                best = [min(b, e) for b, e in zip(best, errs, strict=True)]
                print(f"| {grid} | {sname} | " + " | ".join(f"{e:.2e}" for e in errs) + " |", flush=True)
        print("| **best fmcore** | | " + " | ".join(f"**{e:.2e}**" for e in best) + " |")
        print("| diffusers' best (issue) | | " + " | ".join(f"{e:g}" for e in DIFFUSERS[name]) + " |")
        print("| ratio | | " + " | ".join(f"{b / d:.2f}" for b, d in zip(best, DIFFUSERS[name], strict=True)) + " |")
        print("\nbest per NFE: " + "; ".join(f"{k}: {w}" for k, w in zip(NFES, who, strict=True)))


def orders(n: int) -> None:
    """Log-log slopes on long grids uniform in log-SNR: over the whole range [0, 1] (lambda infinite at the ends:
    the logsnr grid's clip grows with the steps) and over [0.01, 0.99] (finite lambda, no clip)."""
    mix = ring()
    grid = GRIDS["logsnr"]
    for span, clip in (((0.0, 1.0), None), ((0.01, 0.99), 10.0)):
        if clip is not None:
            GRIDS["logsnr"] = ("logsnr", {"clip": clip})
        print(f"\n### fitted orders on [{span[0]}, {span[1]}] (log-log slope over NFE "
              + ", ".join(map(str, ORDER_NFES)) + ", logsnr grid)\n")
        print("| path | sampler | " + " | ".join(f"NFE {k}" for k in ORDER_NFES) + " | order |")
        print("|---|---|" + "---|" * (len(ORDER_NFES) + 1))
        for name, path in PATHS.items():
            field = Field(Oracle(mix, path, Prediction.DATA), path, Prediction.DATA, span)
            x0 = mix.at(path, span[0]).sample(n, torch.Generator().manual_seed(0))
            noise = BatchNoise(0, 0, n, tuple(mix.shape), "cpu", torch.float64)
            ref = reference_flow(mix, path, x0, span, steps=4000)
            for sname, make in samplers("logsnr").items():
                errs = [error(make(k), field, x0, noise, ref) for k in ORDER_NFES]
                slope = -np.polyfit(np.log(ORDER_NFES), np.log(errs), 1)[0]
                print(f"| {name} | {sname} | " + " | ".join(f"{e:.2e}" for e in errs) + f" | {slope:.2f} |",
                      flush=True)
    GRIDS["logsnr"] = grid


#: few-step candidates at NFE 16 for the random-mixture comparison (among the best on the ring mixture)
FAST = {
    "unipc 3 time, logsnr grid": lambda: UniPC(UniPCOptions(steps=16, order=3, interpolation="time",
                                                            grid=choice("grid", "logsnr"))),
    "unipc 3 time, data grid": lambda: UniPC(UniPCOptions(steps=16, order=3, interpolation="time",
                                                          grid=choice("grid", "data"))),
    "unipc (defaults: 2 time, data grid)": lambda: UniPC(UniPCOptions(steps=16)),
    "dpm_solver_pp (defaults: 2M time, data grid)": lambda: DPMSolverPP(DPMSolverOptions(steps=16)),
    "unipc 1 log_snr, angle grid": lambda: UniPC(UniPCOptions(steps=16, order=1, interpolation="log_snr",
                                                              grid=choice("grid", "angle"))),
    "adams 3 angle, angle grid": lambda: Adams(AdamsOptions(steps=16, order=3, variable="angle",
                                                            grid=choice("grid", "angle"))),
    "adams 4 angle, data grid rho 1.5": lambda: Adams(AdamsOptions(steps=16, order=4, variable="angle",
                                                                   grid=choice("grid", "data", rho=1.5))),
    "adams 4 t, data grid rho 1.1": lambda: Adams(AdamsOptions(steps=16, order=4)),
    "adams (defaults: 2 t, data grid rho 1.1)": lambda: Adams(AdamsOptions(steps=16)),
}


def random_mixture(gen: torch.Generator) -> GaussianMixture:
    """bench/samplers.py's random mixture: 2 to 8 components of std 0.5, means N(0, 4 I), weights 0.2 + U(0, 1)."""
    size = int(torch.randint(2, 9, (1,), generator=gen))
    means = 2.0 * torch.randn(size, 2, generator=gen)
    weights = torch.rand(size, generator=gen) + 0.2
    return GaussianMixture.isotropic(means, 0.5, weights / weights.sum())


#: adams settings compared on random mixtures (``--select``): (order, variable, grid, grid options)
ADAMS_CANDIDATES = [(4, "t", "data", {"rho": 1.0}), (4, "t", "data", {"rho": 1.1}), (4, "t", "data", {"rho": 1.2}),
                    (4, "t", "data", {"rho": 1.3}), (3, "t", "data", {"rho": 1.1}), (2, "t", "uniform", {}),
                    (4, "angle", "data", {"rho": 1.1}), (4, "angle", "uniform", {}), (3, "angle", "uniform", {}),
                    (3, "angle", "angle", {})]


def select(k: int, n: int) -> None:
    """How adams' defaults were chosen: CondOT, ``k`` random mixtures (seed 2024, not the ring), NFE 8 / 10 / 15;
    geometric mean and median of the endpoint error, wins against unipc's best ring setting (order 1, log_snr,
    data grid rho 1.1), and, for validation only, the ring's error."""
    gen = torch.Generator().manual_seed(2024)
    path = PATHS["condot"]
    problems = []
    for mix in [random_mixture(gen) for _ in range(k)] + [ring()]:
        field, x0, noise = problem(mix, path, n)
        problems.append((field, x0, noise, reference_flow(mix, path, x0)))
    print(f"\n### CondOT, {k} random std-0.5 mixtures (seed 2024): adams settings\n")
    print("| NFE | setting | geometric mean | median | beats unipc 1 log_snr data 1.1 | ring |")
    print("|---|---|---|---|---|---|")
    for nfe in (8, 10, 15):
        base = UniPC(UniPCOptions(steps=nfe, order=1, interpolation="log_snr", grid=choice("grid", "data", rho=1.1)))
        base_errs = [error(base, *p) for p in problems]
        rows = [("unipc 1 log_snr, data rho 1.1", base_errs)]
        for order, variable, grid, options in ADAMS_CANDIDATES:
            sampler = Adams(AdamsOptions(steps=nfe, order=order, variable=variable,
                                         grid=choice("grid", grid, **options)))
            label = f"adams {order} {variable}, {grid}" + "".join(f" rho {v:g}" for v in options.values())
            rows.append((label, [error(sampler, *p) for p in problems]))
        for label, errs in rows:
            rnd, wins = np.array(errs[:-1]), sum(e < b for e, b in zip(errs[:-1], base_errs[:-1], strict=True))
            print(f"| {nfe} | {label} | {np.exp(np.log(rnd).mean()):.2e} | {np.median(rnd):.2e} | {wins} / {k} | "
                  f"{errs[-1]:.2e} |", flush=True)


def random_mixtures(k: int, n: int) -> None:
    """VP: few-step samplers at NFE 16 against Euler at NFE 64 (uniform t), on ``k`` random std-0.5 mixtures
    (bench/samplers.py's: 2 to 8 components, means N(0, 4 I)). Euler runs on the velocity field, whose range
    ends at 1 - 1e-3 on VP; each is compared with the reference at its own end."""
    gen = torch.Generator().manual_seed(123)
    path = PATHS["vp"]
    errors = {name: [] for name in [*FAST, "euler 64"]}
    for _ in range(k):
        mix = random_mixture(gen)
        field, x0, noise = problem(mix, path, n)
        ref = reference_flow(mix, path, x0)
        for name, make in FAST.items():
            errors[name].append(error(make(), field, x0, noise, ref))
        euler_field = oracle_field(mix, path, Prediction.VELOCITY, 1e-3)  # velocity is infinite at VP's t = 1
        euler_ref = reference_flow(mix, path, x0, euler_field.time_range)
        errors["euler 64"].append(error(Euler(SamplerOptions(steps=64)), euler_field, x0, noise, euler_ref))
    slow = np.array(errors["euler 64"])
    print(f"\n### VP, {k} random std-0.5 mixtures: NFE 16 against Euler at NFE 64 "
          f"(median error {np.median(slow):.2e})\n")
    print("| sampler at NFE 16 | wins | median error |\n|---|---|---|")
    for name in FAST:
        fast = np.array(errors[name])
        print(f"| {name} | {int((fast < slow).sum())} / {k} | {np.median(fast):.2e} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--random", type=int, default=0, metavar="K")
    p.add_argument("--orders", action="store_true")
    p.add_argument("--select", type=int, default=0, metavar="K", help="adams settings on K random CondOT mixtures")
    p.add_argument("--no-tables", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    if not args.no_tables:
        tables(args.n)
    if args.orders:
        orders(args.n)
    if args.random:
        random_mixtures(args.random, args.n)
    if args.select:
        select(args.select, args.n)
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
