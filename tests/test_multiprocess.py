"""Two CPU processes (torchrun + gloo) train one model with the global batch split between them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.test_training import _recipe_text

TOLERANCE = 0.15  # max relative gap between the two loss curves (each point: mean over 25 steps)


def _losses(run) -> tuple[list[int], np.ndarray]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in rows], np.array([r["loss"] for r in rows])


@pytest.mark.e2e
def test_two_processes_match_one_process_and_write_once(tmp_path, write_recipe):
    recipe = write_recipe(_recipe_text(steps=250, batch_size=256, lr=2e-3, log_every=25, checkpoint_every=125,
                                       seed=0))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, "-m", "fmcore", "train", recipe, "--run-dir", one], check=True,
                   capture_output=True, env=env)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "fmcore",
                           "train", recipe, "--run-dir", two], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout and "micro-batch 128" in proc.stdout
    assert proc.stdout.count("trained 250 steps") == 1, "only the main process reports"

    steps1, loss1 = _losses(one)
    steps2, loss2 = _losses(two)
    assert steps1 == steps2 == list(range(25, 251, 25)), "one log line per step, from one process"
    gap = np.abs(loss2 - loss1) / loss1
    assert gap[1:].max() < TOLERANCE, (loss1, loss2)
    ckpts = sorted(p.name for p in (two / "checkpoints").iterdir())
    assert ckpts == ["step_00000125", "step_00000250"]
    files = sorted(p.name for p in (two / "checkpoints" / "step_00000250").iterdir())
    assert files == ["ema.safetensors", "model.safetensors", "optimizer.safetensors", "rng_0.safetensors",
                     "rng_1.safetensors", "state.json"] or files == ["model.safetensors", "optimizer.safetensors",
                                                                     "rng_0.safetensors", "rng_1.safetensors",
                                                                     "state.json"]
