"""The run directory: what ``fm train`` writes and ``fm sample`` / ``fm eval`` read.

    recipe.toml          the resolved recipe (every default filled in)
    model.safetensors    final raw weights          ema.safetensors   final EMA weights (when ema > 0)
    checkpoints/step_*   resumable training state   metrics.jsonl     one JSON object per log step
    samples.png          model samples beside data  loss.png          the loss curve
"""

from __future__ import annotations

from pathlib import Path

import attrs
import torch

from fmcore.core.errors import FmError
from fmcore.plugins.registry import Registry
from fmcore.recipe.build import Components, build
from fmcore.recipe.recipe import Recipe, apply_overrides, read_toml, recipe_from_dict
from fmcore.run.checkpoint import checkpoint_dirs, load_tensors

RECIPE = "recipe.toml"
MODEL = "model.safetensors"
EMA = "ema.safetensors"
METRICS = "metrics.jsonl"


@attrs.frozen
class Run:
    """A trained run: its recipe, live components (network holding the chosen weights) and their source."""

    directory: Path
    recipe: Recipe
    components: Components
    weights: Path


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


def open_run(run_dir: str | Path, registry: Registry, ema: bool = True, overrides: list[str] = (),
             sampler: str | None = None) -> Run:
    """Load a run directory's recipe and weights (EMA weights by default).

    ``sampler`` replaces the recipe's sampler (its options start from their defaults); ``overrides`` are
    ``TABLE.KEY=VALUE`` changes applied after that.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FmError(f"run directory {str(run_dir)!r} not found" if not run_dir.exists() else
                      f"{str(run_dir)!r} is not a directory")
    if not (run_dir / RECIPE).is_file():
        raise FmError(f"{str(run_dir)!r} is not an fmcore run directory (it has no {RECIPE}; "
                      "`fm train` writes one)")
    raw = read_toml(run_dir / RECIPE)
    if sampler is not None:
        raw["sampler"] = {"name": sampler}
    recipe = recipe_from_dict(apply_overrides(raw, list(overrides)), registry, source=str(run_dir / RECIPE))
    components = build(recipe, registry)
    path = weights_file(run_dir, ema)
    state, _ = load_tensors(path)
    missing, unexpected = components.network.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise FmError(f"{path} does not match the recipe's network: missing {missing[:5]}, "
                      f"unexpected {unexpected[:5]}")
    components.network.eval()
    return Run(run_dir, recipe, components, path)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
