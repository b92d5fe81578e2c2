"""Turn a validated recipe into live components and check, once, that they fit together."""

from __future__ import annotations

from typing import Any

import attrs

from fmcore.core.coupling import Coupling
from fmcore.core.dataset import Dataset
from fmcore.core.errors import FmError
from fmcore.core.field import Field
from fmcore.core.network import Network
from fmcore.core.objective import Objective
from fmcore.core.options import Choice
from fmcore.core.path import ProbabilityPath
from fmcore.core.sampler import Sampler
from fmcore.plugins.registry import Registry
from fmcore.recipe.check import compatibility_problems
from fmcore.recipe.recipe import Recipe


class IncompatibleError(FmError):
    """Components of a recipe that cannot work together (every pair that does not fit is listed)."""


@attrs.frozen
class Components:
    """The live components of a recipe (``network`` is None when built without it). The coupling is also
    the objective's (:attr:`Objective.coupling`), which pairs noise and data in its loss."""

    recipe: Recipe
    dataset: Dataset
    path: ProbabilityPath
    objective: Objective
    sampler: Sampler
    network: Network | None = None
    coupling: Coupling | None = None

    def field(self, network=None) -> Field:
        """The network (or another one, e.g. its EMA copy) read as a field through path and objective."""
        return Field(network if network is not None else self.network, self.path, self.objective.prediction,
                     self.objective.time_range(self.path))


def describer(registry: Registry):
    """``describe(table, choice)`` -> ``[table] name (package version)`` for messages."""

    def describe(table: str, choice: Choice) -> str:
        component = registry.find(choice.kind, choice.cls) if (choice.kind, choice.name) not in registry else \
            registry.get(choice.kind, choice.name)
        return f"{table} {component.source if component is not None else choice.name}"

    return describe


def make(choice: Choice, table: str, registry: Registry, source: str, *args: Any) -> Any:
    """``choice.create(*args)``; an exception from the component's code becomes an error naming it."""
    try:
        return choice.create(*args)
    except FmError:
        raise
    except (ValueError, TypeError, OSError, RuntimeError, KeyError, IndexError, ArithmeticError) as exc:
        raise FmError(f"{source}: {describer(registry)(table, choice)} failed to build: "
                      f"{type(exc).__name__}: {' '.join(str(exc).split())}") from None


def build(recipe: Recipe, registry: Registry, *, network: bool = True, training: bool = False) -> Components:
    """Instantiate every component after running the compatibility check over the declarations (before the
    network is allocated). ``training``: also require a trainable network."""
    describe = describer(registry)
    parts = {table: make(recipe.choice(table), f"[{table}]", registry, recipe.source)
             for table in ("data", "path", "objective", "sampler", "coupling")}
    parts["objective"].coupling = parts["coupling"]
    c = Components(recipe, parts["data"], parts["path"], parts["objective"], parts["sampler"],
                   coupling=parts["coupling"])
    _raise(recipe, compatibility_problems(c, describe, training=training))
    if not network:
        return c
    net = make(recipe.network, "[network]", registry, recipe.source, c.dataset.info)
    net.bind(c.dataset, c.path, c.objective.prediction)
    return attrs.evolve(c, network=net)


def _raise(recipe: Recipe, problems: list[str]) -> None:
    if len(problems) == 1:
        raise IncompatibleError(f"{recipe.source}: {problems[0]}")
    if problems:
        raise IncompatibleError(f"{recipe.source}: {len(problems)} components do not fit together: " + "; ".join(
            f"({i}) {p}" for i, p in enumerate(problems, 1)))
