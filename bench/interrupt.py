"""Interrupt `fm train` at many random moments and check that resuming gives bit-identical results.

Each trial trains the same recipe into a fresh run directory and interrupts it one to three times, each time
with a random signal (SIGTERM, SIGINT or SIGKILL) at a random moment of one of three kinds:

    step        the trainer is held after a random step (FMCORE_TEST_HOLD=step:N) and signalled there
    checkpoint  held inside a checkpoint write, before it is published (FMCORE_TEST_HOLD=checkpoint:N)
    wall        signalled after a random delay since the process started (anywhere: imports, building,
                the loop, a checkpoint write, the final pictures)

then resumes with `fm train --resume` until the run finishes. The final model and EMA weights must equal
those of an uninterrupted run byte for byte, and metrics.jsonl must hold every logged step once with the same
loss. Exit codes must be 130 (SIGINT) / 143 (SIGTERM) / -9 (SIGKILL), or 0 when the run finished first; a
"wall" signal may also arrive while the interpreter is still importing torch, before `fm` runs and writes
anything: the signal's default action then ends the process (-2 for SIGINT, -15 for SIGTERM), which is fine.

    python bench/interrupt.py --trials 30 --seed 0
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fmcore.run import checkpoint as ckpt
from fmcore.run.training import HELD, HOLD_ENV

RECIPE = """
[data]
name = "moons"
[path]
name = "condot"
[objective]
name = "cfm"
[network]
name = "mlp"
hidden = [32, 32]
[sampler]
name = "euler"
steps = 10
[train]
steps = {steps}
batch_size = 64
lr = 2e-3
warmup = 10
schedule = "cosine"
ema = 0.99
log_every = 5
seed = 3
checkpoint_every = {every}
"""
FM = [sys.executable, "-m", "fmcore"]
ENV = {k: v for k, v in os.environ.items() if k != HOLD_ENV} | {"OMP_NUM_THREADS": "1"}
SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT, "SIGKILL": signal.SIGKILL}
EXPECTED = {signal.SIGTERM: 143, signal.SIGINT: 130, signal.SIGKILL: -9}


def rows(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def newest(run: Path) -> int:
    found = ckpt.checkpoint_dirs(run)
    return int(found[-1].name[len(ckpt.PREFIX):]) if found else 0


def interrupt(args: list, run: Path, kind: str, sig: int, rng: random.Random, steps: int, every: int
              ) -> tuple[str, int]:
    """Start ``fm ARGS`` and signal it at a moment of ``kind``; the kind used and the exit code."""
    start = newest(run)
    env = ENV
    if start >= steps:  # every step is done: only the final writes are left to interrupt
        kind = "wall"
    if kind == "step":
        env = ENV | {HOLD_ENV: f"step:{rng.randrange(start + 1, steps + 1)}"}
    elif kind == "checkpoint":
        candidates = list(range(max(every, -(-(start + 1) // every) * every), steps + 1, every))
        env = ENV | {HOLD_ENV: f"checkpoint:{rng.choice(candidates)}"}
    (run / HELD).unlink(missing_ok=True)
    proc = subprocess.Popen([str(a) for a in args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kind == "wall":
        time.sleep(rng.uniform(0.0, 6.0))
    else:
        while not (run / HELD).exists() and proc.poll() is None:
            time.sleep(0.005)
    if proc.poll() is None:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=600)
    if proc.returncode not in (0, EXPECTED[sig], -sig):
        print(f"  {kind} {signal.Signals(sig).name}: exit {proc.returncode}: {err.decode()[-400:]}")
    return kind, proc.returncode


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--every", type=int, default=10, help="checkpoint_every (checkpoints to interrupt inside)")
    a = p.parse_args()
    rng = random.Random(a.seed)
    root = Path(tempfile.mkdtemp(prefix="fm-interrupt-"))
    recipe = root / "recipe.toml"
    recipe.write_text(RECIPE.format(steps=a.steps, every=a.every))
    ref = root / "ref"
    t0 = time.perf_counter()
    subprocess.run([*FM, "train", recipe, "--run-dir", ref], check=True, capture_output=True, env=ENV)
    print(f"reference run: {time.perf_counter() - t0:.1f}s")
    seen, bad = collections.Counter(), []
    for trial in range(a.trials):
        run = root / f"run{trial}"
        args = [*FM, "train", recipe, "--run-dir", run]
        for _ in range(rng.randint(1, 3)):
            kind, name = rng.choice(["step", "checkpoint", "wall"]), rng.choice(list(SIGNALS))
            kind, code = interrupt(args, run, kind, SIGNALS[name], rng, a.steps, a.every)
            ok = code in (EXPECTED[SIGNALS[name]], 0) or (kind == "wall" and code == -SIGNALS[name])
            seen[(kind, name, code)] += 1
            if not ok:
                bad.append(f"trial {trial}: {kind} {name} exited {code}")
            if code == 0:
                break
            if (run / "recipe.toml").is_file():
                args = [*FM, "train", "--resume", run]
        if not (run / "model.safetensors").is_file():
            done = subprocess.run([str(x) for x in args], capture_output=True, text=True, env=ENV)
            if done.returncode != 0:
                bad.append(f"trial {trial}: the final run exited {done.returncode}: {done.stderr[-300:]}")
                continue
        same = all((run / f).read_bytes() == (ref / f).read_bytes() for f in ("model.safetensors", "ema.safetensors"))
        if not same or rows(run) != rows(ref):
            bad.append(f"trial {trial}: weights identical {same}, metrics identical {rows(run) == rows(ref)}")
        print(f"trial {trial}: {'ok' if not bad or not bad[-1].startswith(f'trial {trial}:') else 'FAILED'}")
    print("\ninterruptions (moment, signal, exit code): count")
    for key, count in sorted(seen.items(), key=str):
        print(f"  {key}: {count}")
    print(f"\n{a.trials - len({b.split(':')[0] for b in bad})} of {a.trials} trials bit-identical; "
          f"{sum(seen.values())} interruptions; {time.perf_counter() - t0:.0f}s")
    for line in bad:
        print("  " + line)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
