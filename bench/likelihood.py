"""Likelihood through the probability-flow ODE: accuracy on exact fields, and the cost of a digits NLL.

    python bench/likelihood.py                         # oracle table only
    python bench/likelihood.py --run RUN --n 1000      # also: NLL of n held-out digits, exact vs Hutchinson
                                                       # (--n-exact: fewer points for the exact divergence)

Oracle table: exact fields of the 2D ring (8 components of std 0.5 on radius 4) and a 16D mixture (6 components
of std 0.5), on CondOT, VP and VE, 64 test points (half from the mixture, half uniform over a box 2 units beyond
its means), float64. Columns: max |ODE log-density - exact| with the exact divergence at rtol = atol = 1e-10 and
the exact marginal at t = 0 as prior ('exact prior'); the same with the path's default prior N(0, beta_0^2 I)
(the neglect of alpha_0 z, docs/likelihood.md); Hutchinson (8 Gaussian probes, 1e-8) max |error| / its standard
error and the mean error against its standard error; mean NFE; seconds.

Run part: ``Run.nll`` on ``n`` held-out points of the run's data (dequantized where discrete) with the exact
divergence and with Hutchinson (``--probes``), each timed, beside the Gaussian baseline.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from fmcore_paths.condot import CondOTOptions, CondOTPath
from fmcore_paths.ve import VEOptions, VEPath
from fmcore_paths.vp import VPOptions, VPPath

import fmcore
from fmcore.core.likelihood import LikelihoodOptions, log_prob
from fmcore.core.oracle import GaussianMixture, oracle_field

PATHS = {"condot": CondOTPath(CondOTOptions()), "vp": VPPath(VPOptions()), "ve": VEPath(VEOptions())}


def mixtures() -> dict[str, GaussianMixture]:
    angle = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    g = torch.Generator().manual_seed(16)
    return {"2D ring": GaussianMixture.isotropic(4.0 * torch.stack([angle.cos(), angle.sin()], dim=1), 0.5),
            "16D": GaussianMixture.isotropic(2.0 * torch.randn(6, 16, generator=g, dtype=torch.float64), 0.5)}


def points(mix: GaussianMixture, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    means = mix.means.flatten(1)
    lo, hi = means.min(0).values - 2, means.max(0).values + 2
    return torch.cat([mix.sample(n // 2, g), lo + (hi - lo) * torch.rand(n - n // 2, means.shape[1], generator=g,
                                                                        dtype=torch.float64)])


def oracle_table(n: int) -> None:
    print(f"{'mixture':<9}{'path':<8}{'exact prior':>12}{'default prior':>15}{'hutch max z':>12}{'mean z':>8}"
          f"{'NFE':>7}{'s':>7}")
    for label, mix in mixtures().items():
        x = points(mix, n)
        for name, path in PATHS.items():
            f = oracle_field(mix, path)
            target, prior = mix.at(path, f.time_range[1]).log_prob(x), mix.at(path, f.time_range[0]).log_prob
            start = time.perf_counter()
            exact = log_prob(f, x, LikelihoodOptions(divergence="exact", rtol=1e-10, atol=1e-10), prior=prior)
            seconds = time.perf_counter() - start
            default = log_prob(f, x, LikelihoodOptions(divergence="exact", rtol=1e-10, atol=1e-10))
            hutch = log_prob(f, x, LikelihoodOptions(divergence="hutchinson", probes=8, probe="gaussian",
                                                     rtol=1e-8, atol=1e-8), prior=prior)
            diff = hutch.logp - target
            z_mean = float(diff.mean()) / (float(hutch.stderr.pow(2).sum().sqrt()) / n)
            print(f"{label:<9}{name:<8}{float((exact.logp - target).abs().max()):>12.2e}"
                  f"{float((default.logp - target).abs().max()):>15.2e}"
                  f"{float((diff.abs() / hutch.stderr).max()):>12.2f}{z_mean:>8.2f}"
                  f"{float(exact.nfe.double().mean()):>7.0f}{seconds:>7.2f}")


def run_table(run_dir: str, sizes: dict[str, int], probes: int, tol: float, device: str) -> None:
    run = fmcore.load_run(run_dir)
    for divergence, n in sizes.items():
        if n <= 0:
            continue
        start = time.perf_counter()
        report = run.nll(n, device=device, divergence=divergence, probes=probes, rtol=tol, atol=tol)
        seconds = time.perf_counter() - start
        print(f"\n{divergence}: {seconds:.1f}s for {n} points ({seconds / n:.2f}s per point), tol {tol:g}")
        print(report.render())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="held-out points for --run (Hutchinson)")
    p.add_argument("--n-exact", type=int, help="held-out points for --run with the exact divergence (default: --n)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--points", type=int, default=64, help="test points for the oracle table")
    p.add_argument("--run", help="a run directory (e.g. of examples/recipes/digits.toml)")
    p.add_argument("--probes", type=int, default=4)
    p.add_argument("--tol", type=float, default=1e-5)
    p.add_argument("--no-oracle", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    if not args.no_oracle:
        oracle_table(args.points)
    if args.run:
        n_exact = args.n if args.n_exact is None else args.n_exact
        run_table(args.run, {"exact": n_exact, "hutchinson": args.n}, args.probes, args.tol, args.device)


if __name__ == "__main__":
    main()
