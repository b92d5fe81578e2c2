"""Train every path x objective combination on ``8gaussians`` at one fixed budget and print W2 to data.

    python bench/combinations.py                       # all nine, default budget (2000 steps, batch 256)
    python bench/combinations.py --paths vp --objectives dsm ddpm --steps 500

Each combination is an ordinary recipe (:func:`recipe_dict`) trained in-process with
:func:`fmcore.run.training.train` into a temporary run directory, then scored like ``fm eval``
(:func:`fmcore.run.evaluate.evaluate`: exact W2 between ``n`` Euler samples from the EMA weights and ``n`` fresh
data points, beside the W2 between two independent data sets of size ``n``, the floor a perfect model
would reach).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

PATHS: dict[str, dict[str, Any]] = {
    "condot": {"name": "condot"},
    "vp": {"name": "vp"},
    "ve": {"name": "ve", "sigma_max": 10.0},
}
OBJECTIVES = ("cfm", "dsm", "ddpm")


def recipe_dict(path: str, objective: str, steps: int = 2000, batch_size: int = 256, hidden: int = 128,
                sampler_steps: int = 100, t_eps: float = 1e-3, seed: int = 0) -> dict[str, dict[str, Any]]:
    """The recipe of one combination: MLP 3 x ``hidden``, Adam with cosine decay, EMA 0.999, Euler sampler.

    Every objective gets the same ``t_eps`` (CFM needs it on VP, whose d beta/dt is infinite at t = 1).
    """
    return {
        "data": {"name": "8gaussians"},
        "path": dict(PATHS[path]),
        "objective": {"name": objective, "t_eps": t_eps},
        "network": {"name": "mlp", "hidden": [hidden] * 3},
        "sampler": {"name": "euler", "steps": sampler_steps},
        "train": {"steps": steps, "batch_size": batch_size, "lr": 2e-3, "schedule": "cosine", "warmup": 100,
                  "ema": 0.999, "log_every": max(1, steps // 4), "mixed_precision": "no", "seed": seed},
    }


def run_combination(path: str, objective: str, n_eval: int = 2000, **kwargs: Any) -> dict[str, Any]:
    """Train one combination and return ``fm eval``'s numbers plus the wall time."""
    from fmcore.plugins.loading import default_host
    from fmcore.recipe.recipe import recipe_from_dict
    from fmcore.run.evaluate import evaluate
    from fmcore.run.rundir import open_run
    from fmcore.run.training import train

    registry = default_host().registry()
    recipe = recipe_from_dict(recipe_dict(path, objective, **kwargs), registry, source=f"{path}-{objective}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fm-bench-") as tmp:
        result = train(recipe, registry, Path(tmp) / "run")
        seconds = time.perf_counter() - start
        scores = evaluate(open_run(result.run_dir, registry), n_eval, seed=0).values
    return {"path": path, "objective": objective, "seconds": seconds, "final_loss": result.final_loss, **scores}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    p.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=list(OBJECTIVES))
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--sampler-steps", type=int, default=100)
    p.add_argument("--t-eps", type=float, default=1e-3)
    p.add_argument("--n", type=int, default=2000, help="samples on each side of W2")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for path in args.paths:
        for objective in args.objectives:
            row = run_combination(path, objective, n_eval=args.n, steps=args.steps, batch_size=args.batch_size,
                                  hidden=args.hidden, sampler_steps=args.sampler_steps, t_eps=args.t_eps)
            rows.append(row)
            print(f"  {path:<7} {objective:<5} W2 {row['w2']:.4f}  ({row['seconds']:.0f}s)", flush=True)
    floor = rows[0]["w2_floor"]
    print(f"\n8gaussians, {args.steps} steps x batch {args.batch_size}, MLP 3x{args.hidden}, EMA 0.999, "
          f"Euler {args.sampler_steps} steps, t_eps {args.t_eps:g}, n = {args.n}")
    print(f"W2 to data (data-vs-data floor {floor:.4f}):\n")
    print("| path \\ objective | " + " | ".join(args.objectives) + " |")
    print("|---|" + "---|" * len(args.objectives))
    for path in args.paths:
        cells = [next(r for r in rows if r["path"] == path and r["objective"] == o) for o in args.objectives]
        print(f"| {path} | " + " | ".join(f"{c['w2']:.3f}" for c in cells) + " |")
    total = sum(r["seconds"] for r in rows)
    print(f"\ntraining time {total:.0f}s in all")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
