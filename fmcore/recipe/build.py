"""Turn a validated recipe into live components, checking that they fit together."""

from __future__ import annotations

import attrs

from fmcore.core.dataset import Dataset
from fmcore.core.errors import FmError
from fmcore.core.field import Field
from fmcore.core.network import Network
from fmcore.core.objective import Objective
from fmcore.core.path import ProbabilityPath
from fmcore.core.sampler import Sampler
from fmcore.plugins.registry import Registry
from fmcore.recipe.recipe import Recipe


@attrs.frozen
class Components:
    """The live components of a recipe."""

    dataset: Dataset
    path: ProbabilityPath
    objective: Objective
    network: Network
    sampler: Sampler

    def field(self, network=None) -> Field:
        """The network (or another one, e.g. its EMA copy) read as a field through path and objective."""
        return Field(network if network is not None else self.network, self.path, self.objective.prediction,
                     self.objective.time_range(self.path))


def _make(recipe: Recipe, registry: Registry, table: str, *args):
    choice = recipe.choice(table)
    cls = registry.get(choice.kind, choice.name).cls
    try:
        return cls(choice.options, *args)
    except (ValueError, TypeError, OSError) as exc:
        if isinstance(exc, FmError):
            raise
        raise FmError(f"{recipe.source}: [{table}] {choice.name}: {exc}") from None


def build(recipe: Recipe, registry: Registry, sampler: bool = True) -> Components:
    """Instantiate every component and check the objective x path combination."""
    dataset = _make(recipe, registry, "data")
    path = _make(recipe, registry, "path")
    objective = _make(recipe, registry, "objective")
    problems = objective.problems(path)
    if problems:
        raise FmError(f"{recipe.source}: [objective] {recipe.objective.name} cannot train on [path] "
                      f"{recipe.path.name}: " + "; ".join(problems))
    network = _make(recipe, registry, "network", dataset.info)
    return Components(dataset, path, objective, network, _make(recipe, registry, "sampler"))
