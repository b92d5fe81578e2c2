"""Helpers shared by the commands: argument types, the registry of a plugin host, the --set option."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fmcore.plugins.loading import PluginHost
from fmcore.plugins.registry import Registry
from fmcore.recipe.train_options import MAX_SEED

SET_HELP = "override a recipe value, e.g. --set train.steps=200 --set network.hidden=[128,128]"


def registry_of(host: PluginHost) -> Registry:
    """The host's registry, with a one-line warning when some plugin is broken or two plugins clash."""
    registry = host.registry()
    host.warn_broken()
    return registry


def seed(text: str) -> int:
    """A seed in 0 .. 2^32 - 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected a seed in 0 .. {MAX_SEED} (2^32 - 1), got {value}")
    return value


#: a count beyond this (samples, points) cannot be meant
MAX_COUNT = 10**9


def positive_int(text: str) -> int:
    """An integer in 1 .. :data:`MAX_COUNT`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if not 0 < value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"expected a positive integer up to {MAX_COUNT:,}, got {value}")
    return value


def add_set(parser: argparse.ArgumentParser, help: str = SET_HELP, metavar: str = "TABLE.KEY=VALUE") -> None:
    parser.add_argument("--set", action="append", default=[], metavar=metavar, help=help)


def add_sampler_choice(parser: argparse.ArgumentParser) -> None:
    """``--sampler NAME`` and ``--set sampler.KEY=VALUE`` (fm sample, fm eval)."""
    parser.add_argument("--sampler", help="use another sampler (its options start from their defaults)")
    add_set(parser, "sampler option, e.g. --set sampler.steps=32 --set sampler.grid=angle", "sampler.KEY=VALUE")


def save_npy(path: Path, array) -> None:
    """``np.save`` of a numpy ``array`` to a temporary file beside ``path``, then rename: ``path`` is never half
    written."""
    import numpy as np

    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)
