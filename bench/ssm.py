"""Sliced against denoising score matching on 8gaussians with the VP path, at the same budget: the recipe
examples/recipes/8gaussians-dsm.toml (MLP 3 x 128, batch 256, the stated steps, cosine lr, EMA), once with
``objective = dsm`` and once with ``objective = ssm`` (its defaults: a noise-predicting network, one Rademacher
projection, variance reduction), then W2 of 2,000 Euler-100 samples (iid and Sobol sources) to fresh data, beside
the data-vs-data floor.

    python bench/ssm.py [--steps 20000] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = "examples/recipes/8gaussians-dsm.toml"


def fm(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "fmcore", *args], check=True, capture_output=True, text=True).stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    for seed in args.seeds:
        for objective in ("dsm", "ssm"):
            with tempfile.TemporaryDirectory() as tmp:
                run = str(Path(tmp) / "run")
                t0 = time.perf_counter()
                fm("train", RECIPE, "--run-dir", run, "--set", f"objective.name={objective}", "--set",
                   f"train.steps={args.steps}", "--set", f"train.seed={seed}")
                wall = time.perf_counter() - t0
                report = json.loads(fm("eval", run, "--source", "sobol", "--json"))
            print(json.dumps({"objective": objective, "seed": seed, "steps": args.steps, "fm_train_wall_s": wall,
                              "w2": report["w2"], "w2_sobol": report["w2_sobol"], "w2_floor": report["w2_floor"]}),
                  flush=True)


if __name__ == "__main__":
    main()
