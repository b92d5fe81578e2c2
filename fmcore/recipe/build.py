"""Turn a validated recipe into live components and check, once, that they fit together."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import attrs
import torch

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
from fmcore.recipe import preflight
from fmcore.recipe.check import compatibility_problems
from fmcore.recipe.recipe import Recipe


class IncompatibleError(FmError):
    """Components of a recipe that cannot work together (every pair that does not fit is listed)."""


#: what a component's own code raises when it fails (memory exhaustion is not among them: it is not the
#: component's fault and is reported as such by the command line)
COMPONENT_ERRORS = (ValueError, TypeError, RuntimeError, KeyError, IndexError, ArithmeticError, AssertionError)


@contextlib.contextmanager
def blame(who: str, doing: str) -> Iterator[None]:
    """Run component code; an exception it raises becomes an :class:`FmError` naming ``who`` (``[sampler] heun
    (fmcore-samplers 0.2.0)``) and what it was ``doing``. The original stays chained (``--debug`` shows it)."""
    try:
        yield
    except FmError:
        raise
    except torch.OutOfMemoryError:
        raise
    except COMPONENT_ERRORS as exc:
        raise FmError(f"{who} failed while {doing}: {type(exc).__name__}: {' '.join(str(exc).split())}; this is "
                      "an error in that component's code or in what it was given (report it to its package "
                      "with the recipe)") from exc


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
    registry: Registry | None = None

    def who(self, table: str, choice: Choice | None = None) -> str:
        """``[table] name (package version)`` for messages (``choice``: another than the recipe's)."""
        choice = choice if choice is not None else self.recipe.choice(table)
        return describer(self.registry)(f"[{table}]", choice) if self.registry is not None else \
            f"[{table}] {choice.name}"

    def field(self, network=None) -> Field:
        """The network (or another one, e.g. its EMA copy) read as a field through path and objective, on the
        times where both the objective's parameterization and the network are finite."""
        net = network if network is not None else self.network
        lo, hi = self.objective.time_range(self.path)
        net_lo, net_hi = net.time_range() if hasattr(net, "time_range") else (0.0, 1.0)
        return Field(net, self.path, self.objective.prediction, (max(lo, net_lo), min(hi, net_hi)))


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


def build(recipe: Recipe, registry: Registry, *, network: bool = True, training: bool = False,
          device: torch.device | None = None, batch: int | None = None, memory_check: bool = True) -> Components:
    """Instantiate every component after running the compatibility check over the declarations and the memory
    preflight (before the network is allocated). ``training``: also require a trainable network, and check
    that training it (micro-)batches of ``batch`` (default: ``[train] batch_size``) fits on ``device``."""
    describe = describer(registry)
    parts = {table: make(recipe.choice(table), f"[{table}]", registry, recipe.source)
             for table in ("data", "path", "objective", "sampler", "coupling")}
    parts["objective"].coupling = parts["coupling"]
    c = Components(recipe, parts["data"], parts["path"], parts["objective"], parts["sampler"],
                   coupling=parts["coupling"], registry=registry)
    _raise(recipe, compatibility_problems(c, describe, training=training))
    if not network:
        return c
    preflight.check_network(recipe.network, c.dataset.info, f"{recipe.source}: {describe('[network]', recipe.network)}",
                            training=training, batch=recipe.train.batch_size if batch is None else batch,
                            ema=recipe.train.ema > 0, device=device, memory_check=memory_check)
    net = make(recipe.network, "[network]", registry, recipe.source, c.dataset.info)
    with blame(c.who("network"), "binding to the data set and path"):
        net.bind(c.dataset, c.path, c.objective.prediction)
    return attrs.evolve(c, network=net)


def _raise(recipe: Recipe, problems: list[str]) -> None:
    if len(problems) == 1:
        raise IncompatibleError(f"{recipe.source}: {problems[0]}")
    if problems:
        raise IncompatibleError(f"{recipe.source}: {len(problems)} components do not fit together: " + "; ".join(
            f"({i}) {p}" for i, p in enumerate(problems, 1)))
