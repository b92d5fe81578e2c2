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
from typing import Any

import attrs
import torch

from fmcore.core.errors import FmError
from fmcore.core.options import Choice
from fmcore.plugins.registry import Registry
from fmcore.recipe.build import Components, build
from fmcore.recipe.check import nested_choices
from fmcore.recipe.recipe import Recipe, choice_to_dict, recipe_from_dict
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


def network_metadata(choice: Choice) -> dict[str, str]:
    """What a weights file records about the network that made it (its recipe table, as JSON)."""
    return {"network": json.dumps(choice_to_dict(choice))}


def _option_changes(recorded: Any, choice: Choice) -> list[str]:
    now = choice_to_dict(choice)
    if not isinstance(recorded, dict) or recorded.get("name") != now["name"]:
        return []
    return [f"{key} = {json.dumps(now.get(key))} in the recipe, but the weights were made with {key} = "
            f"{json.dumps(recorded.get(key))}" for key in sorted(set(now) | set(recorded))
            if now.get(key) != recorded.get(key)]


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors holding a NaN or an inf."""
    return [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def checked_tensors(network: torch.nn.Module, path: Path, choice: Choice, finite: bool = False
                    ) -> dict[str, torch.Tensor]:
    """The tensors of weights file ``path``, checked against ``network``: every parameter present, every
    tensor known, every shape equal (a mismatch names the tensor and the [network] option that differs from the
    one the weights were made with) and, with ``finite``, no NaN or inf."""
    tensors, meta = load_tensors(path)
    expected = network.state_dict()
    params = [k for k, _ in network.named_parameters()]
    problems = [f"tensor {k} is missing" for k in params if k not in tensors][:3]
    problems += [f"tensor {k} is not part of this network" for k in tensors if k not in expected][:3]
    problems += [f"tensor {k} has shape {list(tensors[k].shape)} in the file but the network makes "
                 f"{list(expected[k].shape)}" for k in expected if k in tensors
                 and tensors[k].shape != expected[k].shape][:3]
    if problems:
        try:
            recorded = json.loads(meta.get("network", "null"))
        except ValueError:
            recorded = None
        changes = _option_changes(recorded, choice)
        options = ", ".join(f"{k} = {json.dumps(v)}" for k, v in choice_to_dict(choice).items())
        hint = (f"[network] {'; '.join(changes)}: restore that value in recipe.toml" if changes else
                f"check the [network] options in recipe.toml ({options}) against those the run was trained with, "
                "and the data set (its shape and class count)")
        raise FmError(f"{path} does not fit the recipe's [network] {choice.name}: {'; '.join(problems)}; {hint}")
    if finite:
        bad = non_finite(tensors)
        if bad:
            raise FmError(f"{path} holds non-finite (NaN or inf) values in {len(bad)} tensor(s), first {bad[0]}; "
                          "samples from it would be NaN. Training diverged before these weights were written: use "
                          "--no-ema (raw weights), an earlier checkpoint, or retrain with a lower lr")
    return tensors


def load_weights(network: torch.nn.Module, path: Path, choice: Choice, finite: bool = False) -> None:
    """Load ``path`` into ``network`` after :func:`checked_tensors`."""
    network.load_state_dict(checked_tensors(network, path, choice, finite), strict=False)


def load_init(network: torch.nn.Module, path: Path, choice: Choice) -> None:
    """``[train] init``: the weights of ``path`` (checked against ``network``, finite) replace its random
    initialisation."""
    if not path.is_file():
        raise FmError(f"[train] init = {str(path)!r}: {'not a file' if path.exists() else 'no such file'}; "
                      "give a .safetensors weights file of this network (a run's ema.safetensors or "
                      "model.safetensors), or remove the key to start from random weights")
    try:
        tensors = checked_tensors(network, path, choice)
    except FmError as exc:
        raise FmError(f"[train] init: {exc}") from None
    bad = non_finite(tensors)
    if bad:
        raise FmError(f"[train] init = {str(path)!r} holds non-finite (NaN or inf) values in {len(bad)} tensor(s), "
                      f"first {bad[0]}; training from them would only produce NaN: start from other weights (the "
                      "run's model.safetensors instead of its ema.safetensors, or an earlier checkpoint's)")
    network.load_state_dict(tensors, strict=False)


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
        return recipe_from_dict(raw, registry, source=str(run_dir / RECIPE), base_dir=run_dir, overrides=given)
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
    load_weights(components.network, path, recipe.network, finite=True)
    components.network.eval()
    return OpenedRun(run_dir, recipe, components, path, registry)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(spec: str | torch.device | None) -> torch.device:
    """The torch device ``spec`` names (None: :func:`default_device`), checked to exist on this machine."""
    if spec is None:
        return default_device()
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError) as exc:
        raise FmError(f"device {str(spec)!r} is not a torch device ({' '.join(str(exc).split())}); use cpu, cuda "
                      "or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise FmError(f"device {str(spec)!r}: this torch ({torch.__version__}) sees no CUDA GPU (a CPU-only "
                          "build, or no GPU or driver visible); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise FmError(f"device {str(spec)!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                          f"cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    elif dev.type != "cpu" and not (hasattr(torch, dev.type) and getattr(torch, dev.type).is_available()):
        raise FmError(f"device {str(spec)!r}: this torch has no usable {dev.type} device; use --device cpu")
    return dev

