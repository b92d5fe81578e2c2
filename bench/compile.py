"""torch.compile on this machine: the train-step time compiled / eager, and the compile time.

For the moons MLP ([256, 256, 256], batch 256) and the digits UNet (examples/recipes/digits.toml, batch 64):
two Trainers from the same recipe, one with ``[train] compile = true``; the first compiled steps are timed
(compile time, beside an eager step), then both are timed interleaved in blocks (bench/interleave.py).

    python bench/compile.py [--blocks 7] [--steps 10]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch
from interleave import interleaved

from fmcore.plugins.loading import get_registry
from fmcore.recipe.recipe import load_recipe, recipe_from_dict
from fmcore.run.training import Trainer

MLP = {
    "data": {"name": "moons"}, "path": {"name": "condot"}, "objective": {"name": "cfm"},
    "network": {"name": "mlp", "hidden": [256, 256, 256]},
    "train": {"lr": 1e-3, "batch_size": 256, "log_every": 100, "steps": 10**9},
}
DIGITS = Path(__file__).resolve().parent.parent / "examples" / "recipes" / "digits.toml"


def recipe(name: str, compiled: bool):
    registry = get_registry()
    flag = f"train.compile={'true' if compiled else 'false'}"
    if name == "mlp":
        raw = copy.deepcopy(MLP)
        raw["train"]["compile"] = compiled
        return recipe_from_dict(raw, registry), registry
    return load_recipe(str(DIGITS), registry, [flag, "train.steps=1000000000"]), registry


def measure(name: str, blocks: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        eager = Trainer(*recipe(name, False), Path(tmp) / "eager")
        comp = Trainer(*recipe(name, True), Path(tmp) / "compiled")
        for t in (eager, comp):
            t.model.train()
        t0 = time.perf_counter()
        eager.train_step()
        first_eager = time.perf_counter() - t0
        t0 = time.perf_counter()
        comp.train_step()
        first_compiled = time.perf_counter() - t0
        t0 = time.perf_counter()
        comp.train_step()  # a second call can still compile (e.g. the optimiser's first step shapes)
        second_compiled = time.perf_counter() - t0
        ratio, ours, theirs = interleaved(comp.train_step, eager.train_step, blocks, steps, warmup=2)
    return {"name": name, "ratio": ratio, "compiled_ms": ours, "eager_ms": theirs, "first_compiled_s": first_compiled,
            "second_compiled_s": second_compiled, "first_eager_s": first_eager}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=7)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--only", choices=("mlp", "unet"))
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'network':>8} {'compiled ms':>12} {'eager ms':>9} {'median ratio':>13} {'1st step s':>11} "
          f"{'2nd step s':>11} {'eager 1st s':>12}")
    for name in ("mlp", "unet"):
        if args.only and name != args.only:
            continue
        r = measure(name, args.blocks, args.steps)
        print(f"{name:>8} {r['compiled_ms']:>12.2f} {r['eager_ms']:>9.2f} {r['ratio']:>13.3f} "
              f"{r['first_compiled_s']:>11.1f} {r['second_compiled_s']:>11.2f} {r['first_eager_s']:>12.3f}")


if __name__ == "__main__":
    main()
