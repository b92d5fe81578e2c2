"""``fm oracle``: a run directory whose network is the exact marginal field of the recipe's data.

Nothing is trained: the run holds the resolved recipe (with ``[network] name = "oracle"``), the components'
provenance and an empty weights file, so that ``fm sample``, ``fm eval`` and the Python API work on it like on
a trained run.
"""

from __future__ import annotations

from pathlib import Path

from fmcore.core.errors import FmError
from fmcore.plugins.registry import Registry
from fmcore.recipe.build import build
from fmcore.recipe.recipe import Recipe, recipe_from_dict
from fmcore.run.checkpoint import save_tensors, write_text_atomic
from fmcore.run.rundir import MODEL, RECIPE, write_provenance

ORACLE = "oracle"


def oracle_recipe(recipe: Recipe, registry: Registry) -> Recipe:
    """``recipe`` with its ``[network]`` replaced by the exact field (its options from their defaults, unless
    the recipe already names a parameter-free network)."""
    if not recipe.network.cls.trainable:
        return recipe
    raw = recipe.to_dict()
    raw["network"] = {"name": ORACLE}
    return recipe_from_dict(raw, registry, source=recipe.source)


def make_oracle_run(recipe: Recipe, run_dir: str | Path, registry: Registry) -> Path:
    """Write the exact-field run of ``recipe``'s data (path, objective, sampler as in the recipe) to ``run_dir``."""
    recipe = oracle_recipe(recipe, registry)
    build(recipe, registry)  # every check, and the network binds to the data: fail before writing anything
    run_dir = Path(run_dir)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise FmError(f"run directory {str(run_dir)!r} already exists and is not empty; choose another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / RECIPE, recipe.to_toml(relative_to=run_dir))
    write_provenance(run_dir, recipe, registry)
    save_tensors({}, run_dir / MODEL, {"oracle": "true"})
    return run_dir
