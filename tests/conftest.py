"""Shared fixtures: a fresh plugin host per test (from the installed entry points, as pluggy's own tests do), its
registry, a recipe writer and an in-process `fm`. Every test runs with one torch thread unless marked
``@pytest.mark.threads`` (small models only pay thread overhead, and on a shared 2-core machine several threads
compete: one guidance test took 226 s with default threads and 6 s with one); subprocesses inherit
``OMP_NUM_THREADS=1``."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import torch

from fmcore.cli import main
from fmcore.plugins.loading import PluginHost

os.environ.setdefault("OMP_NUM_THREADS", "1")

MOONS = """
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
steps = 20
batch_size = 64
log_every = 10
"""


def oracle_recipe(sampler: str, steps: int) -> str:
    """The exact field of 8gaussians on CondOT (a velocity oracle), sampled with ``sampler`` in ``steps`` steps."""
    return f"""
[data]
name = "8gaussians"
[path]
name = "condot"
[objective]
name = "cfm"
[network]
name = "oracle"
[sampler]
name = "{sampler}"
steps = {steps}
"""


@pytest.fixture(autouse=True)
def _one_thread(request):
    """One torch thread for every test; opt out with ``@pytest.mark.threads``."""
    if request.node.get_closest_marker("threads"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def host() -> PluginHost:
    """A plugin host built fresh for this test from the installed entry points (never the process-wide one)."""
    return PluginHost()


@pytest.fixture
def registry(host):
    return host.registry()


@pytest.fixture
def write_recipe(tmp_path):
    """Write a recipe (default: a tiny moons recipe) and return its path."""

    def write(text: str = MOONS, name: str = "recipe.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def fm(capsys):
    """Run `fm ARGS...` in-process with a plugin host built fresh for the call (so plugins installed or
    environment variables set during the test are seen), or the given ``host``; returns (exit code, stdout,
    stderr)."""

    def run(*args: str, host: PluginHost | None = None) -> tuple[int, str, str]:
        code = main([str(a) for a in args], host=host if host is not None else PluginHost())
        out, err = capsys.readouterr()
        return code, out, err

    return run
