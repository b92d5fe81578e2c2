"""The Python API: what each ``fm`` command does, as one call with a typed result.

    import fmcore
    recipe = fmcore.load_recipe("examples/recipes/moons.toml", overrides=["train.steps=500"])
    fmcore.train(recipe, "runs/moons")
    run = fmcore.load_run("runs/moons")
    x = run.sample(1000, sampler="heun", steps=16)       # a tensor [1000, 2]
    print(run.evaluate(n=1000).render())

Every function takes an optional ``registry`` (default: every installed plugin); errors are
:class:`~fmcore.core.errors.FmError` with the same one-paragraph messages as the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fmcore.core.errors import FmError
from fmcore.core.field import Field
from fmcore.core.options import Choice
from fmcore.core.sampler import Sampler, SampleResult
from fmcore.plugins.loading import get_registry
from fmcore.plugins.registry import Registry
from fmcore.recipe import build as _build
from fmcore.recipe.check import sampler_problems
from fmcore.recipe.recipe import Loader, Recipe, RecipeError, choice_to_dict
from fmcore.recipe.recipe import load_recipe as _load_recipe
from fmcore.run import oracle_run, rundir, training
from fmcore.run.evaluate import EvalReport
from fmcore.run.evaluate import evaluate as _evaluate
from fmcore.run.sampling import balanced_labels, generate

Components = _build.Components


def load_recipe(path: str | Path, overrides: list[str] = (), registry: Registry | None = None) -> Recipe:
    """Read and validate a recipe file; ``overrides`` are ``TABLE.KEY=VALUE`` strings (as ``--set``)."""
    return _load_recipe(path, registry or get_registry(), list(overrides))


def choice(kind: str, name: str, registry: Registry | None = None, **options: Any) -> Choice:
    """A component chosen by name with ``options`` (for options that are components in Python code, e.g.
    ``HeunOptions(grid=fmcore.choice("grid", "angle"))``); problems are reported like a recipe's."""
    loader = Loader(registry or get_registry())
    made = loader.choice(kind, {"name": name, **options}, f"{kind} {name!r}")
    if loader.problems:
        raise RecipeError(f"{kind} {name!r}", loader.problems)
    return made


def build(recipe: Recipe, registry: Registry | None = None, *, training: bool = False) -> Components:
    """Live components of a recipe, after the compatibility check (what ``fm recipe check`` runs)."""
    return _build.build(recipe, registry or get_registry(), training=training)


def _recipe(recipe: Recipe | str | Path, registry: Registry) -> Recipe:
    return recipe if isinstance(recipe, Recipe) else _load_recipe(recipe, registry)


def train(recipe: Recipe | str | Path, run_dir: str | Path, *, resume: bool = False,
          registry: Registry | None = None) -> training.TrainResult:
    """Train ``recipe`` (a :class:`Recipe` or a file) into ``run_dir``; ``resume``: continue that run."""
    registry = registry or get_registry()
    return training.train(_recipe(recipe, registry), registry, run_dir, resume=resume)


class Run:
    """A trained (or exact-field) run directory, opened: ``recipe``, ``components`` (the network holds the
    chosen weights), ``weights`` (the file they came from)."""

    def __init__(self, opened: rundir.OpenedRun):
        self.opened = opened
        self.directory, self.recipe, self.components = opened.directory, opened.recipe, opened.components
        self.weights, self.registry = opened.weights, opened.registry

    def __repr__(self) -> str:
        return f"Run({str(self.directory)!r}, weights={self.weights.name!r})"

    def field(self) -> Field:
        """The network read through its path and parameterization: ``.velocity(x, t)``, ``.score(x, t)``."""
        return self.components.field()

    def sampler(self, name: str | None = None, **options: Any) -> Sampler:
        """The run's sampler, or sampler ``name``, with ``options`` changed (checked against the path)."""
        current = self.recipe.sampler
        values = {"name": name} if name is not None else choice_to_dict(current)
        values.update(options)
        loader = Loader(self.registry)
        choice = loader.choice("sampler", values, "[sampler]")
        if loader.problems:
            raise RecipeError("sampler options", loader.problems)
        return self._checked(choice)

    def _checked(self, choice: Choice) -> Sampler:
        sampler = _build.make(choice, "[sampler]", self.registry, str(self.directory))
        describe = _build.describer(self.registry)
        problems = sampler_problems(sampler, choice, self.components.path, describe("[path]", self.recipe.path),
                                    describe)
        if problems:
            raise FmError("; ".join(problems))
        return sampler

    def sample_result(self, n: int, sampler: str | None = None, *, seed: int = 0, classes: list[int] | None = None,
                      guidance: float | None = None, device: str | torch.device | None = None,
                      batch_size: int = 4096, trajectory: int = 0, **options: Any) -> SampleResult:
        """``n`` samples with their NFE (and the paths of the first ``trajectory`` of them); see :meth:`sample`."""
        s = self.sampler(sampler, **options) if (sampler is not None or options) else self.components.sampler
        info = self.components.network.info
        labels = None if classes is None else balanced_labels(n, classes)
        device = torch.device(device) if device is not None else rundir.default_device()
        self.components.network.to(device)
        return generate(self.field(), s, n, info.shape, seed=seed, device=device, batch_size=batch_size,
                        labels=labels, null_label=info.null_label, guidance=guidance, trajectory=trajectory)

    def sample(self, n: int, sampler: str | None = None, *, seed: int = 0, **kwargs: Any) -> Tensor:
        """``n`` samples [n, *shape] (CPU). Sample ``i`` depends only on ``(seed, i)``. ``sampler`` and
        keyword options (``steps=32``, ``grid="angle"``) replace the recipe's; ``classes`` (a list of labels,
        cycled) and ``guidance`` make conditional samples."""
        return self.sample_result(n, sampler, seed=seed, **kwargs).x.cpu()

    def evaluate(self, n: int = 2000, *, seed: int = 0, sampler: str | None = None, device=None,
                 guidance: float | None = None, features: str | None = None, source: str | None = None,
                 **options: Any) -> EvalReport:
        """``fm eval``: distances to fresh data beside their floors (``.render()`` prints the table);
        ``source="sobol"`` adds the rows of a quasi-random prior source."""
        opened = self.opened
        if sampler is not None or options:
            choice_sampler = self.sampler(sampler, **options)
            c = _build.Components(self.recipe, self.components.dataset, self.components.path,
                                  self.components.objective, choice_sampler, self.components.network)
            opened = rundir.OpenedRun(self.directory, self.recipe, c, self.weights, self.registry)
        device = torch.device(device) if device is not None else rundir.default_device()
        return _evaluate(opened, n, seed=seed, device=device, guidance=guidance, features=features, source=source)


def load_run(run_dir: str | Path, *, ema: bool = True, sampler: str | None = None, overrides: list[str] = (),
             registry: Registry | None = None) -> Run:
    """Open a run directory (EMA weights by default); ``sampler``/``overrides`` as ``fm sample``'s."""
    return Run(rundir.open_run(run_dir, registry or get_registry(), ema=ema, overrides=overrides, sampler=sampler))


def make_oracle_run(recipe: Recipe | str | Path, run_dir: str | Path, registry: Registry | None = None) -> Run:
    """Write the exact-field run of a recipe's data (``fm oracle``) and open it."""
    registry = registry or get_registry()
    path = oracle_run.make_oracle_run(_recipe(recipe, registry), run_dir, registry)
    return load_run(path, registry=registry)
