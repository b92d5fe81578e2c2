"""Shared test material: the built-in paths the tests run on (name -> a factory of a fresh path), and a writer of
small image folders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
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


def write_image_folder(root: Path, classes: tuple[str, ...] = ("a", "b"), per_class: int = 3,
                       size: tuple[int, int] = (8, 8), seed: int = 0) -> Path:
    """A folder of random RGB PNGs, one sub-folder of ``per_class`` images (H x W = ``size``) per class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label in classes:
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    return root
