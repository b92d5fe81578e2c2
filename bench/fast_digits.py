"""Few-step samplers on a trained image model: distance of NFE-k samples to an accurate ODE solution of the same run.

    python bench/fast_digits.py RUN_DIR [--n 300] [--nfe 10 15]

The Fréchet distance (``fm eval``) measures samples against data, and a sampler's error can move it either way; this
measures the sampler alone: the same ``n`` initial noises (seed 0) integrated by each sampler at NFE k and by Heun at
NFE 200 (the reference), mean L2 distance per sample (pixel space; the mean image norm is printed for scale).
Samplers: unipc (default and order 3), dpm_solver_pp, ddim, euler, heun, and adams over order x variable x grid.
"""

from __future__ import annotations

import argparse

import torch

from fmcore import api

#: adams grids compared: (name, options)
GRIDS = [("data", {"rho": 1.1}), ("data", {"rho": 1.5}), ("data", {"rho": 2.0}), ("angle", {}), ("uniform", {})]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--nfe", type=int, nargs="+", default=[10, 15])
    args = p.parse_args()
    torch.set_num_threads(1)
    run, n = api.load_run(args.run_dir), args.n

    def flat(name: str, **options) -> torch.Tensor:
        with torch.no_grad():
            return run.sample(n, name, seed=0, **options).reshape(n, -1)

    ref = flat("heun", steps=100)
    print(f"reference: heun, NFE 200; mean image norm {float(ref.norm(dim=1).mean()):.2f}")

    def dist(name: str, **options) -> str:
        return f"{float((flat(name, **options) - ref).norm(dim=1).mean()):.3f}"

    for nfe in args.nfe:
        print(f"\n### NFE {nfe}\n")
        print(f"unipc (defaults) {dist('unipc', steps=nfe)}; unipc 3 {dist('unipc', steps=nfe, order=3)}; "
              f"dpm_solver_pp {dist('dpm_solver_pp', steps=nfe)}; ddim {dist('ddim', steps=nfe)}; "
              f"euler {dist('euler', steps=nfe)}; heun {dist('heun', steps=nfe // 2)}\n")
        print("| adams | " + " | ".join(g + "".join(f" rho {v:g}" for v in o.values()) for g, o in GRIDS) + " |")
        print("|---|" + "---|" * len(GRIDS))
        for variable in ("t", "angle"):
            for order in (2, 3, 4):
                row = [dist("adams", steps=nfe, order=order, variable=variable, grid={"name": g, **o})
                       for g, o in GRIDS]
                print(f"| {order} {variable} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
