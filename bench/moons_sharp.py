"""examples/recipes/moons-sharp.toml against its bar: W2 ratio to the floor <= 1.05 with the Sobol source and
moon thickness within 2% of the data's, after at most 60 s of training on this machine's threads.

    python bench/moons_sharp.py [--seconds 55] [--seed 0] [--run-dir DIR]

The step count is fixed before training from a measured rate (a short ``fm train`` of the same recipe), so that
the real run's training loop fits ``--seconds``; the script then times ``fm train`` (start-up, previews and
all) and runs ``fm eval --source sobol`` (2,000 samples, Heun 50).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = "examples/recipes/moons-sharp.toml"


def fm(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "fmcore", *args], check=True, capture_output=True, text=True).stdout


def loop_rate(run_dir: Path) -> float:
    """Mean training steps per second over the logged intervals after the first (metrics.jsonl)."""
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = rows[1:] or rows
    return sum(r["steps_per_s"] for r in rows) / len(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=55.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--probe-steps", type=int, default=400)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe"
        fm("train", RECIPE, "--run-dir", str(probe), "--set", f"train.steps={args.probe_steps}")
        rate = loop_rate(probe)
        steps = max(100, int(args.seconds * rate) // 100 * 100)
        run = Path(args.run_dir) if args.run_dir else Path(tmp) / "run"
        t0 = time.perf_counter()
        fm("train", RECIPE, "--run-dir", str(run), "--set", f"train.steps={steps}", "--set",
           f"train.seed={args.seed}")
        wall = time.perf_counter() - t0
        loop_s = steps / loop_rate(run)
        report = json.loads(fm("eval", str(run), "--source", "sobol", "--json"))
    out = {"probe_steps_per_s": rate, "steps": steps, "train_loop_s": loop_s, "fm_train_wall_s": wall, **report,
           "thickness_sobol_over_data": report["thickness_sobol"] / report["thickness_floor"]}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
