"""Issue 17, end to end: `fm train` interrupted by SIGTERM, SIGINT or SIGKILL at moments the test observes (a
given step, or inside a checkpoint write, through the FMCORE_TEST_HOLD hook: the trainer waits there until it
is signalled), then resumed: final weights and every logged loss are bit-identical to an uninterrupted run.
Two writers on one run directory: the second is refused naming the first's pid. No sleeps decide anything, so
the outcome does not depend on the machine's speed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fmcore.run import checkpoint as ckpt
from fmcore.run.training import HELD, HOLD_ENV
from tests.conftest import MOONS

pytestmark = pytest.mark.e2e

FM = [sys.executable, "-m", "fmcore"]
ENV = {k: v for k, v in os.environ.items() if k != HOLD_ENV} | {"OMP_NUM_THREADS": "1"}
#: default checkpoint settings (checkpoint_every = 0, checkpoint_minutes = 10): checkpoints only at the end
#: and on a signal
TRAIN = ("[train]\nsteps = 60\nbatch_size = 64\nlr = 2e-3\nwarmup = 10\nschedule = \"cosine\"\nema = 0.99\n"
         "log_every = 5\nseed = 3\n")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "recipe.toml"
    path.write_text(MOONS.replace("[train]\nsteps = 20\nbatch_size = 64\nlog_every = 10\n", TRAIN))
    return path


@pytest.fixture(scope="module")
def reference(recipe, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ref") / "run"
    subprocess.run([*FM, "train", recipe, "--run-dir", run], check=True, capture_output=True, env=ENV)
    return run


def start_held(args: list, hold: str, run: Path) -> subprocess.Popen:
    """Start ``fm ARGS`` with the hold hook at ``hold`` and return once it waits there."""
    (run / HELD).unlink(missing_ok=True)  # left by a process killed while held
    proc = subprocess.Popen([str(a) for a in args], env=ENV | {HOLD_ENV: hold}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (run / HELD).exists():
        if proc.poll() is not None:
            pytest.fail(f"fm exited with {proc.returncode} before reaching {hold}: {proc.stderr.read()}")
        assert time.monotonic() < deadline, f"never reached {hold}"
        time.sleep(0.01)
    return proc


def signal_held(proc: subprocess.Popen, sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def fm(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*FM, *map(str, args)], capture_output=True, text=True, env=ENV, timeout=600)


def assert_same_as(run: Path, reference: Path) -> None:
    """Bit-identical final weights, and the same losses logged once per step."""
    for name in ("model.safetensors", "ema.safetensors"):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name

    def rows(r):
        return [(row["step"], row["loss"]) for row in map(json.loads, (r / "metrics.jsonl").read_text().splitlines())]

    assert rows(run) == rows(reference)


@pytest.mark.parametrize(("hold", "sig", "code"), [
    ("step:23", signal.SIGTERM, 143),
    ("step:41", signal.SIGINT, 130),
    ("checkpoint:60", signal.SIGTERM, 143),  # during the final checkpoint's write
])
def test_signal_checkpoints_exits_and_resumes_bit_identically(recipe, reference, tmp_path, hold, sig, code):
    run = tmp_path / "run"
    proc = start_held([*FM, "train", recipe, "--run-dir", run], hold, run)
    got, err = signal_held(proc, sig)
    step = int(hold.split(":")[1])
    assert got == code, err
    assert "Traceback" not in err
    assert (f"error: {signal.Signals(sig).name} received: training stopped after step {step} of 60; the checkpoint "
            f"{run}/checkpoints/step_{step:08d} holds it. Continue exactly where it stopped with: fm train --resume "
            f"{run}\n") in err
    assert [p.name for p in ckpt.checkpoint_dirs(run)] == [f"step_{step:08d}"]
    assert not (run / "model.safetensors").exists()
    done = fm("train", "--resume", run)
    assert done.returncode == 0, done.stderr
    assert f"resuming from {run}/checkpoints/step_{step:08d} (step {step})" in done.stdout
    assert_same_as(run, reference)


def test_sigkill_during_the_first_checkpoint_write_then_resume_from_step_0(recipe, reference, tmp_path):
    run = tmp_path / "run"
    proc = start_held([*FM, "train", recipe, "--run-dir", run, "--set", "train.checkpoint_every=20"],
                      "checkpoint:20", run)
    assert signal_held(proc, signal.SIGKILL)[0] == -signal.SIGKILL
    assert ckpt.checkpoint_dirs(run) == [] and (run / "checkpoints" / ".tmp-step_00000020").is_dir()
    again = fm("train", recipe, "--run-dir", run)
    assert again.returncode == 2 and f"already holds a run; continue it with `fm train --resume {run}`" in again.stderr
    done = fm("train", "--resume", run)
    assert done.returncode == 0, done.stderr
    assert "has no checkpoint yet: starting again from step 0" in done.stdout
    assert_same_as(run, reference)  # checkpoint_every changes when state is saved, never the numbers


def test_sigkill_twice_then_resume_is_bitwise_identical(recipe, reference, tmp_path):
    """Killed at step 33 and again at step 47 (after checkpoints at 20 and 40): two resumes, exact result."""
    run = tmp_path / "run"
    args = [*FM, "train", recipe, "--run-dir", run, "--set", "train.checkpoint_every=20"]
    for hold, last in (("step:33", 20), ("step:47", 40)):
        proc = start_held(args, hold, run)
        assert signal_held(proc, signal.SIGKILL)[0] == -signal.SIGKILL
        assert int(ckpt.checkpoint_dirs(run)[-1].name[len(ckpt.PREFIX):]) == last
        args = [*FM, "train", "--resume", run]
    done = fm(*args[3:])
    assert done.returncode == 0, done.stderr
    assert_same_as(run, reference)
    assert [p.name for p in ckpt.checkpoint_dirs(run)] == ["step_00000040", "step_00000060"]  # keep_checkpoints


def test_two_writers_the_second_is_refused_naming_the_first(recipe, tmp_path):
    run = tmp_path / "run"
    first = start_held([*FM, "train", recipe, "--run-dir", run, "--set", "train.checkpoint_every=5"], "step:12", run)
    try:
        for args in (["train", recipe, "--run-dir", run], ["train", "--resume", run]):
            second = fm(*args)
            assert second.returncode == 2 and "Traceback" not in second.stderr
            assert f"is being written by another `fm train` (pid {first.pid})" in second.stderr
        reader = fm("sample", run, "--n", "10", "--out", tmp_path / "x.npy")  # readers take no lock
        assert reader.returncode == 0, reader.stderr
        assert "weights ema.safetensors" in reader.stdout  # of the checkpoint at step 10
    finally:
        first.kill()
        first.communicate()
    third = fm("train", "--resume", run)  # the kernel released the dead process's lock
    assert third.returncode == 0, third.stderr
    assert "resuming from" in third.stdout and "(step 10)" in third.stdout
