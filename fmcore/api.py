"""The Python API: what each ``fm`` command does, as one call with a typed result.

    import fmcore
    recipe = fmcore.load_recipe("examples/recipes/moons.toml", overrides=["train.steps=500"])
    fmcore.train(recipe, "runs/moons")
    run = fmcore.load_run("runs/moons")
    x = run.sample(1000, sampler="heun", steps=16)       # a tensor [1000, 2]
    print(run.evaluate(n=1000).render())
    logp = run.logp(points, divergence="exact").logp   # log-densities [N] in nats
    print(run.nll(n=1000).render())                     # held-out NLL, bits/dim, Gaussian baseline

Every function takes an optional ``registry`` (default: every installed plugin); errors caused by the input
or the machine (a path that cannot be written, memory it does not have) are :class:`~fmcore.core.errors.FmError`
with the same one-paragraph messages as the command line; any other exception is a bug.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import torch
from torch import Tensor

from fmcore.core.errors import FmError, did_you_mean, listing, raises_user_errors
from fmcore.core.field import Field
from fmcore.core.likelihood import LikelihoodOptions, LogDensity
from fmcore.core.options import Choice
from fmcore.core.sampler import Sampler, SampleResult
from fmcore.core.transform import transform_field
from fmcore.plugins.kinds import KINDS, kind_named
from fmcore.plugins.loading import get_registry
from fmcore.plugins.registry import Registry
from fmcore.recipe import build as _build
from fmcore.recipe.check import sampler_problems
from fmcore.recipe.recipe import Loader, Recipe, RecipeError, choice_to_dict
from fmcore.recipe.recipe import load_recipe as _load_recipe
from fmcore.run import likelihood as _likelihood
from fmcore.run import oracle_run, rundir, training
from fmcore.run import reflow as _reflow
from fmcore.run.evaluate import EvalReport
from fmcore.run.evaluate import evaluate as _evaluate
from fmcore.run.sampling import balanced_labels, generate

Components = _build.Components


@raises_user_errors
def load_recipe(path: str | Path, overrides: list[str] = (), registry: Registry | None = None) -> Recipe:
    """Read and validate a recipe file; ``overrides`` are ``TABLE.KEY=VALUE`` strings (as ``--set``)."""
    return _load_recipe(path, registry or get_registry(), list(overrides))


@raises_user_errors
def choice(kind: str, name: str, registry: Registry | None = None, **options: Any) -> Choice:
    """A component chosen by name with ``options`` (for options that are components in Python code, e.g.
    ``HeunOptions(grid=fmcore.choice("grid", "angle"))``); ``kind`` may also be a recipe table (``"data"``);
    problems are reported like a recipe's."""
    resolved = kind_named(kind)
    if resolved is None:
        raise FmError(f"unknown component kind {kind!r}{did_you_mean(kind, KINDS)}; kinds: {listing(KINDS)}")
    kind = resolved
    loader = Loader(registry or get_registry())
    made = loader.choice(kind, {"name": name, **options}, f"{kind} {name!r}")
    if loader.problems:
        raise RecipeError(f"{kind} {name!r}", loader.problems)
    return made


@raises_user_errors
def build(recipe: Recipe, registry: Registry | None = None, *, training: bool = False) -> Components:
    """Live components of a recipe, after the compatibility check (what ``fm recipe check`` runs)."""
    return _build.build(recipe, registry or get_registry(), training=training)


def _recipe(recipe: Recipe | str | Path, registry: Registry) -> Recipe:
    return recipe if isinstance(recipe, Recipe) else _load_recipe(recipe, registry)


@raises_user_errors
def train(recipe: Recipe | str | Path, run_dir: str | Path, *, resume: bool = False,
          registry: Registry | None = None, memory_check: bool = True) -> training.TrainResult:
    """Train ``recipe`` (a :class:`Recipe` or a file) into ``run_dir``; ``resume``: continue that run;
    ``memory_check=False`` skips the memory preflight."""
    registry = registry or get_registry()
    return training.train(_recipe(recipe, registry), registry, run_dir, resume=resume, memory_check=memory_check)


class Run:
    """A trained (or exact-field) run directory, opened: ``recipe``, ``components`` (the network holds the
    chosen weights), ``weights`` (the file they came from)."""

    def __init__(self, opened: rundir.OpenedRun):
        self.opened = opened
        self.directory, self.recipe, self.components = opened.directory, opened.recipe, opened.components
        self.weights, self.registry = opened.weights, opened.registry

    def __repr__(self) -> str:
        return f"Run({str(self.directory)!r}, weights={self.weights.name!r})"

    def field(self, path: str | None = None) -> Field:
        """The network read through its path and parameterization: ``.velocity(x, t)``, ``.score(x, t)``;
        ``path``: read along that Gaussian path (default options) through the exact schedule transform
        (fmcore/core/transform.py)."""
        field = self.components.field()
        return field if path is None else transform_field(field, choice("path", path, self.registry).create())

    def sampler(self, name: str | None = None, **options: Any) -> Sampler:
        """The run's sampler, or sampler ``name``, with ``options`` changed (checked against the path)."""
        return self._sampler_choice(name, **options)[0]

    def _sampler_choice(self, name: str | None = None, **options: Any) -> tuple[Sampler, Choice]:
        if name is None and not options:
            return self.components.sampler, self.recipe.sampler
        values = {"name": name} if name is not None else choice_to_dict(self.recipe.sampler)
        values.update(options)
        loader = Loader(self.registry)
        choice = loader.choice("sampler", values, "[sampler]")
        if loader.problems:
            raise RecipeError("sampler options", loader.problems)
        return self._checked(choice), choice

    def _checked(self, choice: Choice) -> Sampler:
        sampler = _build.make(choice, "[sampler]", self.registry, str(self.directory))
        describe = _build.describer(self.registry)
        problems = sampler_problems(sampler, choice, self.components.path, describe("[path]", self.recipe.path),
                                    describe)
        if problems:
            raise FmError("; ".join(problems))
        return sampler

    @raises_user_errors
    def sample_result(self, n: int, sampler: str | None = None, *, seed: int = 0, classes: list[int] | None = None,
                      guidance: float | None = None, device: str | torch.device | None = None,
                      batch_size: int = 4096, trajectory: int = 0, path: str | None = None,
                      **options: Any) -> SampleResult:
        """``n`` samples with their NFE (and the paths of the first ``trajectory`` of them); see :meth:`sample`."""
        s, choice = self._sampler_choice(sampler, **options)
        c = self.components
        info = c.network.info
        labels = None if classes is None else balanced_labels(n, classes)
        device = rundir.resolve_device(device)
        c.network.to(device)
        with _build.blame(f"{c.who('sampler', choice)} on {c.who('network')}", "sampling"):
            return generate(self.field(path), s, n, info.shape, seed=seed, device=device, batch_size=batch_size,
                            labels=labels, null_label=info.null_label, guidance=guidance, trajectory=trajectory)

    def sample(self, n: int, sampler: str | None = None, *, seed: int = 0, **kwargs: Any) -> Tensor:
        """``n`` samples [n, *shape] (CPU). Sample ``i`` depends only on ``(seed, i)``. ``sampler`` and
        keyword options (``steps=32``, ``grid="angle"``) replace the recipe's; ``classes`` (a list of labels,
        cycled) and ``guidance`` make conditional samples; ``path="vp"`` samples along another Gaussian path
        through the exact schedule transform (:meth:`field`)."""
        return self.sample_result(n, sampler, seed=seed, **kwargs).x.cpu()

    @raises_user_errors
    def evaluate(self, n: int = 2000, *, seed: int = 0, sampler: str | None = None, device=None,
                 guidance: float | None = None, features: str | None = None, source: str | None = None,
                 **options: Any) -> EvalReport:
        """``fm eval``: distances to fresh data beside their floors (``.render()`` prints the table);
        ``source="sobol"`` adds the rows of a quasi-random prior source."""
        opened = self.opened
        if sampler is not None or options:
            s, choice = self._sampler_choice(sampler, **options)
            recipe = attrs.evolve(self.recipe, choices={**self.recipe.choices, "sampler": choice})
            c = attrs.evolve(self.components, recipe=recipe, sampler=s)
            opened = rundir.OpenedRun(self.directory, recipe, c, self.weights, self.registry)
        device = rundir.resolve_device(device)
        return _evaluate(opened, n, seed=seed, device=device, guidance=guidance, features=features, source=source)


    def logp(self, points: Tensor, options: LikelihoodOptions | None = None, *, labels: Tensor | None = None,
             device=None, batch_size: int = 1024, dtype: torch.dtype | None = None, grad: bool = False,
             progress=None, **likelihood: Any) -> LogDensity:
        """``fm logp``: log-densities (nats) of ``points`` [N, *shape] through the probability-flow ODE, with
        their standard errors (``.logp``, ``.stderr``, ``.nfe``). ``options`` or keyword likelihood options
        (``divergence="exact"``, ``probes=8``, ``rtol=1e-6``, ``solver="rk4"``, ...); ``grad=True`` keeps the graph
        so that gradients reach ``points`` and the network."""
        options = self._likelihood_options(options, likelihood)
        device = rundir.resolve_device(device)
        return _likelihood.run_log_prob(self.opened, points, options, labels=labels, device=device,
                                        batch_size=batch_size, dtype=dtype, grad=grad, progress=progress)

    def nll(self, n: int = 1000, options: LikelihoodOptions | None = None, *, seed: int = 0, device=None,
            batch_size: int = 1024, dtype: torch.dtype | None = None, progress=None,
            **likelihood: Any) -> _likelihood.NLLReport:
        """``fm eval --nll``: held-out NLL in nats and bits/dim with 95 % intervals, beside a fitted Gaussian."""
        options = self._likelihood_options(options, likelihood)
        device = rundir.resolve_device(device)
        return _likelihood.nll(self.opened, n, options, seed=seed, device=device, batch_size=batch_size,
                               dtype=dtype, progress=progress)

    @staticmethod
    def _likelihood_options(options: LikelihoodOptions | None, values: dict[str, Any]) -> LikelihoodOptions:
        if options is not None and values:
            raise FmError("give the likelihood options either as options=LikelihoodOptions(...) or as keywords")
        if options is not None:
            return options
        from fmcore.recipe.recipe import structure_options

        return structure_options(LikelihoodOptions, values, "likelihood options:")


@raises_user_errors
def load_run(run_dir: str | Path, *, ema: bool = True, sampler: str | None = None, overrides: list[str] = (),
             registry: Registry | None = None) -> Run:
    """Open a run directory (EMA weights by default); ``sampler``/``overrides`` as ``fm sample``'s."""
    return Run(rundir.open_run(run_dir, registry or get_registry(), ema=ema, overrides=overrides, sampler=sampler))


@raises_user_errors
def reflow(run_dir: str | Path, new_dir: str | Path, pairs: int, *, distill: bool = False, steps: int | None = None,
           init: bool = False, sampler: str | None = None, overrides: list[str] = (), seed: int = 0,
           chunk: int = 4096, device=None, ema: bool = True, memory_check: bool = True,
           registry: Registry | None = None, progress=None) -> _reflow.ReflowResult:
    """``fm reflow``: draw ``pairs`` (noise, endpoint) pairs from the run ``run_dir`` (its ``sampler`` and the
    ``sampler.KEY=VALUE`` entries of ``overrides``) into ``new_dir/pairs`` and train a new run there on that
    fixed coupling (``distill``: a one-step map), from ``run_dir``'s weights with ``init`` (else from random
    weights); the other ``overrides`` and ``steps`` change the new run's recipe. A rerun continues the pairs,
    then the training (docs/couplings.md)."""
    registry = registry or get_registry()
    sampler_sets = [o for o in overrides if o.strip().startswith("sampler.")]
    recipe_sets = [o for o in overrides if not o.strip().startswith("sampler.")]
    source = rundir.open_run(run_dir, registry, ema=ema, overrides=sampler_sets, sampler=sampler)
    return _reflow.reflow(source, new_dir, pairs, registry, distill=distill, steps=steps, init=init,
                          overrides=recipe_sets, seed=seed, chunk=chunk, device=rundir.resolve_device(device),
                          memory_check=memory_check, progress=progress)


@raises_user_errors
def make_oracle_run(recipe: Recipe | str | Path, run_dir: str | Path, registry: Registry | None = None) -> Run:
    """Write the exact-field run of a recipe's data (``fm oracle``) and open it."""
    registry = registry or get_registry()
    path = oracle_run.make_oracle_run(_recipe(recipe, registry), run_dir, registry)
    return load_run(path, registry=registry)
