"""Sampling spread over processes: whole noise blocks per process, gathered, equal to one process's samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fmcore.core.noise import BLOCK
from fmcore.run.distributed import share
from tests.test_sampling_cli import ORACLE

MLP = ORACLE.replace('name = "oracle"', 'name = "mlp"\nhidden = [32, 32]') + """
[train]
steps = 30
batch_size = 128
log_every = 10
"""


@pytest.mark.parametrize("n", [1, 63, 64, 65, 200, 1000, 4097])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shares_are_whole_blocks_that_tile_the_samples(n, world):
    shares = [share(n, r, world) for r in range(world)]
    starts = [s for s, _ in shares]
    assert starts[0] == 0 and sum(c for _, c in shares) == n
    assert all(s1 == s0 + c0 for (s0, c0), (s1, _) in zip(shares, shares[1:], strict=False)), "contiguous"
    assert all(s % BLOCK == 0 for s, c in shares if c), "each share starts on a noise block"
    blocks = [-(-c // BLOCK) for _, c in shares]
    assert max(blocks) - min(blocks) <= 1, "as even as whole blocks allow"


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "fmcore",
                           *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.e2e
@pytest.mark.parametrize("network", ["oracle", "mlp"])
def test_two_processes_sample_exactly_what_one_does(fm, write_recipe, tmp_path, network):
    recipe = write_recipe(ORACLE if network == "oracle" else MLP)
    run = tmp_path / "run"
    code, _, err = fm("oracle" if network == "oracle" else "train", recipe, "--run-dir", run)
    assert code == 0, err
    for extra in ([], ["--sampler", "euler_maruyama", "--set", "sampler.steps=20"]):  # an SDE: noise after x0 too
        code, out, err = fm("sample", run, "--n", 200, "--seed", 3, "--out", tmp_path / "one.npy", *extra)
        assert code == 0, err
        proc = _torchrun("sample", run, "--num-samples", 200, "--seed", 3, "--out", tmp_path / "two.npy", *extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.count("200 samples with") == 1 and "over 2 processes" in proc.stdout, proc.stdout
        one, two = np.load(tmp_path / "one.npy"), np.load(tmp_path / "two.npy")
        assert one.shape == two.shape == (200, 2) and np.array_equal(one, two), np.abs(one - two).max()


@pytest.mark.e2e
def test_two_processes_evaluate_what_one_does(fm, write_recipe, tmp_path):
    run = tmp_path / "run"
    code, _, err = fm("oracle", write_recipe(ORACLE), "--run-dir", run)
    assert code == 0, err
    code, out, err = fm("eval", run, "--n", 300, "--json")
    assert code == 0, err
    proc = _torchrun("eval", run, "--num-samples", 300, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout) == json.loads(out), "one report, printed once, with the same numbers"
