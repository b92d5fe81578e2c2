"""Startup cost of the command line: ``fm plugins`` and ``fm --help`` beside ``python -c "import torch, fmcore"``.

Each command runs as a fresh process, the three interleaved (so machine load affects them alike); the report is the
median wall time of each over ``--repeat`` rounds and the median per-round difference to the import baseline.

    python bench/startup.py --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import torch, fmcore": [sys.executable, "-c", "import torch, fmcore"],
    "fm plugins": [sys.executable, "-m", "fmcore", "plugins"],
    "fm --help": [sys.executable, "-m", "fmcore", "--help"],
}


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for cmd in COMMANDS.values():  # warm the file cache
        wall(cmd)
    for _ in range(args.repeat):
        for name, cmd in COMMANDS.items():
            times[name].append(wall(cmd))
    base = times["import torch, fmcore"]
    print(f"{'command':<24}{'median s':>10}{'extra vs import (median of rounds) s':>40}")
    for name, ts in times.items():
        extra = statistics.median(t - b for t, b in zip(ts, base, strict=True))
        print(f"{name:<24}{statistics.median(ts):>10.3f}{extra:>40.3f}")


if __name__ == "__main__":
    main()
