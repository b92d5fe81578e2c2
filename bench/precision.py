"""bf16 against fp32: the same recipe and seed trained in each precision (each in its own process, since
accelerate's state is per process), then W2 of 2,000 samples to fresh data for both.

    python bench/precision.py [--recipe examples/recipes/8gaussians-cfm.toml] [--steps 1500]

The issue's bar: bf16's W2 within 10% of fp32's at the same budget.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FM = [sys.executable, "-m", "fmcore"]


def run(recipe: str, precision: str, steps: int, hidden: str, out: Path) -> tuple[float, float]:
    """(W2 to fresh data, training seconds) for one precision."""
    t0 = time.perf_counter()
    subprocess.run([*FM, "train", recipe, "--run-dir", str(out), "--set", f"train.mixed_precision='{precision}'",
                    "--set", f"train.steps={steps}", "--set", f"network.hidden={hidden}"],
                   check=True, capture_output=True)
    seconds = time.perf_counter() - t0
    res = subprocess.run([*FM, "eval", str(out), "--n", "2000", "--json"], check=True, capture_output=True,
                         text=True)
    return json.loads(res.stdout)["w2"], seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default="examples/recipes/8gaussians-cfm.toml")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--hidden", default="[128,128,128]")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {p: run(args.recipe, p, args.steps, args.hidden, Path(tmp) / p) for p in ("no", "bf16")}
    (w_fp32, s_fp32), (w_bf16, s_bf16) = results["no"], results["bf16"]
    print(f"{args.recipe}, {args.steps} steps, hidden {args.hidden}")
    print(f"fp32: W2 {w_fp32:.4f} ({s_fp32:.0f} s)   bf16: W2 {w_bf16:.4f} ({s_bf16:.0f} s)")
    print(f"bf16 / fp32 W2 ratio: {w_bf16 / w_fp32:.3f} (target within 10%: 0.9 .. 1.1); "
          f"time ratio {s_bf16 / s_fp32:.1f}")


if __name__ == "__main__":
    main()
