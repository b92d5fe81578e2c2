"""Couplings: what pairing costs per training step, and what it buys at few sampling steps.

    python bench/couplings.py cost  [--batch 256 512 1024] [--steps 60] [--sinkhorn EPSILON ITERATIONS]
    python bench/couplings.py table [--seconds 20] [--seeds 0 1 2] [--datasets 8gaussians moons] [--steps N]
                                    [--couplings independent ot ot:32 sinkhorn] [--sinkhorn EPSILON ITERATIONS]
                                    [--lr LR]

A coupling ``ot:B`` is ``ot`` solving the assignment in blocks of ``B`` points of the batch (its ``block``).

``cost`` times, on this machine's threads (or its GPU, where accelerate finds one), a full training step
(fmcore's Trainer.train_step: data, loss with the coupling, backward, Adam, EMA) beside the coupling's ``pair``
alone, for every coupling and batch size.

``table`` trains each coupling on each data set for the same *wall time* ``--seconds``; because the machine is
shared (timings drift with other people's work), the step budget of each coupling is fixed in advance as
``seconds x steps/s`` from a ``cost`` measurement taken in the same process, so every seed of a coupling gets
the same number of steps (``--steps N``: N steps for every coupling instead). Each run is then sampled with
Euler at 1, 2, 4 and 100 steps from the Sobol source (2,000 samples) and compared with 2,000 fresh data points
by exact W2 (floor: two fresh data sets).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from fmcore.plugins.loading import get_registry
from fmcore.recipe.recipe import recipe_from_dict
from fmcore.run.metrics import wasserstein2
from fmcore.run.rundir import open_run
from fmcore.run.sampling import generate
from fmcore.run.training import Trainer, train

COUPLINGS = {"independent": {"name": "independent"}, "ot": {"name": "ot"},
             "ot:32": {"name": "ot", "block": 32}, "sinkhorn": {"name": "sinkhorn"}}


def coupling_spec(text: str) -> str:
    """A coupling name for ``--couplings``: one of :data:`COUPLINGS`, or ``ot:B`` (``ot`` with ``block = B``)."""
    if text.startswith("ot:") and text[3:].isdigit():
        COUPLINGS[text] = {"name": "ot", "block": int(text[3:])}
    if text not in COUPLINGS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(COUPLINGS)} or ot:BLOCK, got {text!r}")
    return text
NFES = (1, 2, 4, 100)


def recipe(dataset: str, coupling: str, steps: int, batch: int = 256, seed: int = 0, lr: float = 2e-3):
    raw = {
        "data": {"name": dataset}, "path": {"name": "condot"}, "objective": {"name": "cfm"},
        "network": {"name": "mlp", "hidden": [256, 256, 256]}, "sampler": {"name": "euler", "steps": 100},
        "coupling": COUPLINGS[coupling],
        "train": {"steps": steps, "batch_size": batch, "lr": lr, "schedule": "cosine",
                  "warmup": min(100, steps // 10), "ema": 0.999, "log_every": max(1, min(100, steps)), "seed": seed},
    }
    return recipe_from_dict(raw, get_registry(), source=f"{dataset}/{coupling}")


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def step_rates(batches: list[int], steps: int, dataset: str = "moons", couplings=tuple(COUPLINGS)) -> list[dict]:
    """Seconds per training step and per ``pair`` call, for every coupling and batch size."""
    rows = []
    registry = get_registry()
    for batch in batches:
        for name in couplings:
            with tempfile.TemporaryDirectory() as tmp:
                trainer = Trainer(recipe(dataset, name, 10_000, batch), registry, Path(tmp))
                for _ in range(5):
                    trainer.train_step()
                sync()
                t0 = time.perf_counter()
                for _ in range(steps):
                    trainer.train_step()
                sync()
                step_s = (time.perf_counter() - t0) / steps
                z = trainer.c.dataset.sample(batch).x.to(trainer.device)
                t0 = time.perf_counter()
                for _ in range(steps):
                    trainer.c.coupling.pair(torch.randn_like(z), z)
                sync()
                pair_s = (time.perf_counter() - t0) / steps
            rows.append({"batch": batch, "coupling": name, "device": str(trainer.device), "step_ms": 1e3 * step_s,
                         "pair_ms": 1e3 * pair_s, "steps_per_s": 1 / step_s, "threads": torch.get_num_threads()})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def w2_at_nfe(run_dir: Path, data: torch.Tensor) -> dict[int, float]:
    run = open_run(run_dir, get_registry())
    c = run.components
    out = {}
    for nfe in NFES:
        sampler = type(c.sampler)(type(c.sampler.options)(steps=nfe, source="sobol"))
        x = generate(c.field(), sampler, data.shape[0], tuple(data.shape[1:]), seed=11).x
        out[nfe] = wasserstein2(x, data)
    return out


def table(seconds: float, seeds: list[int], datasets: list[str], couplings: list[str], n: int = 2000,
          steps: int | None = None, lr: float = 2e-3) -> list[dict]:
    """W2 rows; each coupling trains ``seconds x its measured rate`` steps, or ``steps`` each when given, with
    Adam's learning rate ``lr`` (the step rates do not depend on it)."""
    registry = get_registry()
    if steps is None:
        rates = {r["coupling"]: r["steps_per_s"] for r in step_rates([256], 40, couplings=couplings)}
        budgets = {name: max(50, int(seconds * rate)) for name, rate in rates.items()}
        print("step budgets for", seconds, "s:", budgets, flush=True)
    else:
        budgets = dict.fromkeys(couplings, steps)
    rows = []
    for dataset in datasets:
        ds = recipe(dataset, "independent", 10).choice("data").create()
        data, data2 = ds.reference(n, seed=1_000_003).x, ds.reference(n, seed=2_000_003).x
        floor = wasserstein2(data, data2)
        for name in couplings:
            for seed in seeds:
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    train(recipe(dataset, name, budgets[name], seed=seed, lr=lr), registry, Path(tmp) / "run")
                    wall = time.perf_counter() - t0
                    w2 = w2_at_nfe(Path(tmp) / "run", data)
                rows.append({"dataset": dataset, "coupling": name, "seed": seed, "steps": budgets[name],
                             "train_wall_s": wall, "w2_floor": floor, **{f"w2_nfe{k}": v for k, v in w2.items()}})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("cost")
    c.add_argument("--batch", type=int, nargs="+", default=[256, 512, 1024])
    c.add_argument("--steps", type=int, default=60)
    c.add_argument("--couplings", nargs="+", default=list(COUPLINGS), type=coupling_spec)
    t = sub.add_parser("table")
    t.add_argument("--seconds", type=float, default=20.0)
    t.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    t.add_argument("--datasets", nargs="+", default=["8gaussians", "moons"])
    t.add_argument("--couplings", nargs="+", default=list(COUPLINGS), type=coupling_spec)
    t.add_argument("--steps", type=int, help="equal step budgets instead of equal wall time")
    t.add_argument("--lr", type=float, default=2e-3, help="Adam's learning rate for every run (default 2e-3)")
    for sub_parser in (c, t):
        sub_parser.add_argument("--sinkhorn", nargs=2, metavar=("EPSILON", "ITERATIONS"), type=float,
                                help="the sinkhorn coupling's epsilon and iterations (default: its defaults)")
    args = ap.parse_args()
    if args.sinkhorn:
        COUPLINGS["sinkhorn"] = {"name": "sinkhorn", "epsilon": args.sinkhorn[0], "iterations": int(args.sinkhorn[1])}
    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.what == "cost":
        step_rates(args.batch, args.steps, couplings=args.couplings)
    else:
        table(args.seconds, args.seeds, args.datasets, args.couplings, steps=args.steps, lr=args.lr)


if __name__ == "__main__":
    main()
