"""The built-in paths the tests run on, in one table: name -> a factory of a fresh path."""

from __future__ import annotations

from collections.abc import Callable

from fmcore_paths.condot import CondOTOptions, CondOTPath
from fmcore_paths.ve import VEOptions, VEPath
from fmcore_paths.vp import VPOptions, VPPath

from fmcore import GaussianPath

PATHS: dict[str, Callable[[], GaussianPath]] = {
    "condot": lambda: CondOTPath(CondOTOptions()),
    "condot-smin": lambda: CondOTPath(CondOTOptions(sigma_min=0.05)),
    "vp": lambda: VPPath(VPOptions()),
    "ve": lambda: VEPath(VEOptions(sigma_min=0.01, sigma_max=10.0)),
}

#: the three paths with their default options, built once
DEFAULT_PATHS: dict[str, GaussianPath] = {name: PATHS[name]() for name in ("condot", "vp", "ve")}
