"""Shared fixtures: the installed registry, a recipe writer and an in-process `fm`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fmcore.cli import main
from fmcore.plugins.loading import get_registry

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


@pytest.fixture
def one_thread():
    """One torch thread: small 2D batches only pay thread overhead (use with pytest.mark.usefixtures)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def registry():
    return get_registry()


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
    """Run `fm ARGS...` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run
