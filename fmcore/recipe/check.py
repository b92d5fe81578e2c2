"""The one compatibility check: every pair of a recipe's components, compared through what each declares.

Declarations are class attributes read here and nowhere else (diffrax's ``term_structure`` is the model):

- a sampler's :meth:`~fmcore.core.sampler.Sampler.needs` (the score, a Gaussian path), and those of the
  components nested in its options (a grid or diffusion with ``needs_gaussian_path``, a predictor sampler);
- an objective's prediction and :meth:`~fmcore.core.objective.Objective.problems` on the path (singular ends);
- a network class's :meth:`~fmcore.core.network.Network.data_problems` (shapes, labels) and ``trainable``
  (checked before the network is allocated);
- a data set's :attr:`~fmcore.core.dataset.Dataset.info` (shape, labels).

``fm recipe check``, ``fm train`` (before step 1), ``fm sample`` and ``fm eval`` all run it; each problem
names both sides: ``[sampler] langevin (fmcore-samplers 0.2.0) needs ... but [path] sigmoid (my-paths) is ...``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import attrs

from fmcore.core.noise import SOBOL_MAX_DIM
from fmcore.core.options import Choice
from fmcore.core.path import GaussianPath, ProbabilityPath
from fmcore.core.sampler import Needs

Describe = Callable[[str, Choice], str]


def nested_choices(choice: Choice, table: str) -> Iterator[tuple[str, Choice]]:
    """``(table, choice)`` for every component nested in ``choice``'s options, depth first."""
    if not attrs.has(type(choice.options)):
        return
    for f in attrs.fields(type(choice.options)):
        value = getattr(choice.options, f.name)
        if isinstance(value, Choice):
            inner = f"{table[:-1]}.{f.name}]"
            yield inner, value
            yield from nested_choices(value, inner)


def path_words(path: ProbabilityPath) -> str:
    return "is Gaussian" if isinstance(path, GaussianPath) else "is not Gaussian (no alpha_t, beta_t, no score)"


def sampler_problems(sampler, sampler_choice: Choice, path: ProbabilityPath, path_side: str,
                     describe: Describe) -> list[str]:
    """What the sampler (and what is nested in it) needs from the path, against what the path is."""
    problems = []
    gaussian = isinstance(path, GaussianPath)
    needs: Needs = sampler.needs()
    side = describe("[sampler]", sampler_choice)
    if needs.score and not gaussian:
        problems.append(f"{side} needs the score, which fmcore defines on Gaussian paths only, but {path_side} "
                        f"{path_words(path)}; use an ODE sampler (euler, heun, ...)")
    elif needs.gaussian_path and not gaussian:
        problems.append(f"{side} needs a Gaussian path (with these options), but {path_side} {path_words(path)}")
    for table, inner in nested_choices(sampler_choice, "[sampler]"):
        if getattr(inner.cls, "needs_gaussian_path", False) and not gaussian:
            problems.append(f"{describe(table, inner)} needs a Gaussian path (it reads alpha_t and beta_t), but "
                            f"{path_side} {path_words(path)}")
    return problems


def compatibility_problems(components, describe: Describe, training: bool = False) -> list[str]:
    """Every incompatibility between the built components of a recipe (empty when they fit together)."""
    c, r = components, components.recipe
    path_side = describe("[path]", r.path)
    objective_problems = c.objective.problems(c.path)
    problems = [f"{describe('[objective]', r.objective)} cannot train on {path_side}: "
                + "; ".join(objective_problems)] if objective_problems else []
    problems += sampler_problems(c.sampler, r.sampler, c.path, path_side, describe)
    info = c.dataset.info
    data_side = describe("[data]", r.data)
    if c.objective.options.cond_dropout > 0 and info.num_classes == 0:
        problems.append(f"{describe('[objective]', r.objective)} has cond_dropout = "
                        f"{c.objective.options.cond_dropout} (classifier-free guidance), but {data_side} has no "
                        "labels; set cond_dropout = 0")
    net_side, net_cls = describe("[network]", r.network), r.network.cls
    problems += [f"{net_side} cannot model {data_side}: {p}" for p in net_cls.data_problems(r.network.options, info)]
    if net_cls.needs_gaussian_path and not isinstance(c.path, GaussianPath):
        problems.append(f"{net_side} needs a Gaussian path (it reads alpha_t and beta_t), but {path_side} "
                        f"{path_words(c.path)}")
    if training and not net_cls.trainable:
        problems.append(f"{net_side} has no trainable parameters, so there is nothing to train; make a run "
                        "from it directly: fm oracle RECIPE --run-dir DIR, then fm sample DIR")
    dim = math.prod(info.shape)
    if getattr(c.sampler.options, "source", "iid") == "sobol" and dim > SOBOL_MAX_DIM:
        problems.append(f"{describe('[sampler]', r.sampler)} has source = 'sobol', but {data_side} has samples of "
                        f"{dim} numbers and a Sobol sequence has at most {SOBOL_MAX_DIM} dimensions; use "
                        "source = 'iid'")
    coupling = r.choices.get("coupling")
    if coupling is not None and not coupling.cls.independent and not c.objective.uses_coupling:
        problems.append(f"{describe('[coupling]', coupling)} pairs noise with data, but "
                        f"{describe('[objective]', r.objective)} draws its own pairs (it does not use a coupling); "
                        "remove the [coupling] table or use a regression objective (cfm, dsm, ddpm)")
    problems += stored_pairs_problems(c, describe, data_side)
    return problems


def stored_pairs_problems(c, describe: Describe, data_side: str) -> list[str]:
    """A data set of stored pairs and the coupling that takes them go together; the stable target (a batch
    posterior that assumes independent pairs) does not fit a fixed coupling."""
    r, stored = c.recipe, bool(c.coupling is not None and c.coupling.stored)
    coupling_side = describe("[coupling]", r.choices["coupling"]) if "coupling" in r.choices else "[coupling]"
    if stored and not type(c.dataset).pairs:
        return [f"{coupling_side} takes the noise stored beside each data point, but {data_side} stores none; "
                "train it on [data] name = 'pairs' (the pairs fm reflow writes)"]
    if type(c.dataset).pairs and not stored:
        return [f"{data_side} stores a partner noise for each point (a fixed coupling), which {coupling_side} "
                "would ignore; set [coupling] name = 'pairs'"]
    if stored and getattr(c.objective.options, "target", "conditional") == "stable":
        return [f"{describe('[objective]', r.objective)} has target = 'stable', a posterior over the batch that "
                f"assumes independent noise and data, but {coupling_side} pairs them; set target = 'conditional'"]
    return []
