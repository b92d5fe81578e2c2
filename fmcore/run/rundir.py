"""The run directory: what ``fm train`` writes and ``fm sample`` / ``fm eval`` read.

    recipe.toml          the resolved recipe (every default filled in)
    components.json      which package and version provided each component
    model.safetensors    final raw weights          ema.safetensors   final EMA weights (when ema > 0)
    checkpoints/step_*   resumable training state   metrics.jsonl     one JSON object per log step
    samples.png          model samples beside data  loss.png          the loss curve
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import attrs
import torch

from fmcore.core.errors import FmError
from fmcore.plugins.registry import Registry
from fmcore.recipe.build import Components, build
from fmcore.recipe.check import nested_choices
from fmcore.recipe.recipe import Recipe, recipe_from_dict
from fmcore.recipe.toml import apply_overrides, read_toml
from fmcore.run.checkpoint import checkpoint_dirs, load_tensors, write_text_atomic

RECIPE = "recipe.toml"
COMPONENTS = "components.json"
MODEL = "model.safetensors"
EMA = "ema.safetensors"
METRICS = "metrics.jsonl"


@attrs.frozen
class OpenedRun:
    """A run directory opened for reading: its recipe, live components (network holding the chosen weights)
    and the weights file they came from."""

    directory: Path
    recipe: Recipe
    components: Components
    weights: Path
    registry: Registry


def provenance(recipe: Recipe, registry: Registry) -> dict[str, dict[str, str]]:
    """``{"[table]": {"kind", "name", "package", "version"}}`` for every component of a recipe, nested ones too."""
    out = {}
    for table, choice in recipe.choices.items():
        for where, c in [(f"[{table}]", choice), *nested_choices(choice, f"[{table}]")]:
            comp = registry.get(c.kind, c.name)
            out[where] = {"kind": c.kind, "name": c.name, "package": comp.package, "version": comp.version}
    return out


def write_provenance(run_dir: Path, recipe: Recipe, registry: Registry) -> None:
    write_text_atomic(run_dir / COMPONENTS, json.dumps(provenance(recipe, registry), indent=2) + "\n")


def _recorded(run_dir: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads((run_dir / COMPONENTS).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def check_provenance(run_dir: Path, registry: Registry, recipe: Recipe | None) -> None:
    """Warn when a component now comes from another package or version than the one the run was made with."""
    if recipe is None:
        return
    for where, now in provenance(recipe, registry).items():
        then = _recorded(run_dir).get(where)
        if isinstance(then, dict) and then.get("name") == now["name"] and (
                then.get("package"), then.get("version")) != (now["package"], now["version"]):
            print(f"warning: {run_dir}: {where} {now['name']} was made with {then.get('package')} "
                  f"{then.get('version')}, now {now['package']} {now['version']} is installed; results may differ",
                  file=sys.stderr)


def missing_hint(run_dir: Path, exc: FmError) -> FmError:
    """The error, plus which package (and version) the run was made with when a component is not installed."""
    text = str(exc)
    for where, then in _recorded(run_dir).items():
        if isinstance(then, dict) and f"unknown {then.get('kind')} {then.get('name')!r}" in text:
            return FmError(f"{text}; this run was made with {where} {then.get('name')} from "
                           f"{then.get('package')} {then.get('version')}: install that package to open it")
    return exc


def weights_file(run_dir: Path, ema: bool = True) -> Path:
    """The weights to sample from: final EMA (or raw) weights, else those of the newest checkpoint."""
    name = EMA if ema else MODEL
    for candidate in [run_dir / name, run_dir / MODEL] if ema else [run_dir / MODEL]:
        if candidate.is_file():
            return candidate
    ckpts = checkpoint_dirs(run_dir)
    if ckpts:
        for candidate in [ckpts[-1] / name, ckpts[-1] / MODEL]:
            if candidate.is_file():
                return candidate
    raise FmError(f"run directory {str(run_dir)!r} has no weights yet ({name}, {MODEL} or a checkpoint)")


def check_is_run(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise FmError(f"run directory {str(run_dir)!r} not found" if not run_dir.exists() else
                      f"{str(run_dir)!r} is not a directory")
    if not (run_dir / RECIPE).is_file():
        raise FmError(f"{str(run_dir)!r} is not an fmcore run directory (it has no {RECIPE}; "
                      "`fm train` writes one)")


def run_recipe(run_dir: Path, registry: Registry, overrides: list[str] = (), sampler: str | None = None) -> Recipe:
    """A run's recipe; ``sampler`` replaces its sampler (options from their defaults), then ``overrides``
    (``TABLE.KEY=VALUE``) apply; problems in them are blamed on ``--set``."""
    raw = read_toml(run_dir / RECIPE)
    if sampler is not None:
        raw["sampler"] = {"name": sampler}
    raw, given = apply_overrides(raw, list(overrides))
    try:
        return recipe_from_dict(raw, registry, source=str(run_dir / RECIPE), overrides=given)
    except FmError as exc:
        raise missing_hint(run_dir, exc) from None


def open_run(run_dir: str | Path, registry: Registry, ema: bool = True, overrides: list[str] = (),
             sampler: str | None = None) -> OpenedRun:
    """Load a run directory's recipe and weights (EMA weights by default); see :func:`run_recipe`."""
    run_dir = Path(run_dir)
    check_is_run(run_dir)
    recipe = run_recipe(run_dir, registry, overrides, sampler)
    check_provenance(run_dir, registry, recipe)
    components = build(recipe, registry)
    path = weights_file(run_dir, ema)
    state, _ = load_tensors(path)
    missing, unexpected = components.network.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise FmError(f"{path} does not match the recipe's network: missing {missing[:5]}, "
                      f"unexpected {unexpected[:5]}")
    components.network.eval()
    return OpenedRun(run_dir, recipe, components, path, registry)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")

