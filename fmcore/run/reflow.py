"""``fm reflow``: rectified flow's reflow and one-step distillation (Liu, Gong & Liu 2022).

1. **Pairs.** Sample ``i``'s standard normal draw ``eps_i`` (from ``(seed, i)`` exactly as ``fm sample``
   draws it) is carried by the source run's sampler to its endpoint ``x1_i``. Chunk ``k`` (samples ``k *
   chunk`` ..) is written atomically into ``NEW/pairs`` (:mod:`fmcore.run.pairs`); a rerun of the same command
   draws only the chunks that are missing, and the chunks do not depend on how many were drawn before.
2. **Reflow.** A new run trains on that fixed coupling: ``[data] pairs`` (the endpoints, each with its noise)
   and ``[coupling] pairs``; the source's path, network, objective (target ``conditional``: the stable target
   assumes independent pairs) and training options, so ``x_t = alpha_t x1 + beta_t eps`` interpolates each
   pair. The new flow has the same end marginals and paths that cross less: it is straighter (Liu et al.,
   Theorem 3.3), so fewer sampling steps suffice.
3. **Distillation** (``distill``): the same pairs with every training time at ``t = 0`` (time density
   ``point``): CFM on CondOT regresses ``v(eps, 0)`` on ``x1 - eps``, so that one Euler step ``eps + v(eps,
   0)`` lands on ``x1``; the new run samples with Euler in one step.

Everything is written under the lock of ``NEW`` (:class:`~fmcore.run.lock.RunLock`); a rerun continues the
pairs, then the training from its newest checkpoint.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import attrs
import torch

from fmcore.core.errors import FmError
from fmcore.core.field import Field
from fmcore.core.noise import BLOCK, BatchNoise
from fmcore.core.path import GaussianPath
from fmcore.core.sampler import Sampler
from fmcore.plugins.registry import Registry
from fmcore.recipe.build import blame
from fmcore.recipe.recipe import Recipe, choice_to_dict, recipe_from_dict
from fmcore.recipe.toml import apply_overrides, read_toml
from fmcore.run import pairs as store
from fmcore.run.lock import LOCK, RunLock
from fmcore.run.rundir import RECIPE, OpenedRun
from fmcore.run.sampling import balanced_labels, check_finite
from fmcore.run.training import TrainResult, train_locked

PAIRS = "pairs"


@attrs.frozen
class ReflowResult:
    run_dir: Path
    pairs_drawn: int
    pairs_total: int
    train: TrainResult


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pairs_manifest(source: OpenedRun, n: int, chunk: int, seed: int) -> dict[str, Any]:
    """What the pairs are and what makes them; a rerun must ask for the same to continue them."""
    info = source.components.network.info
    return {"n": n, "chunk": chunk, "seed": seed, "shape": list(info.shape), "num_classes": info.num_classes,
            "source": str(source.directory.resolve()), "weights": source.weights.name,
            "weights_sha256": sha256(source.weights), "sampler": choice_to_dict(source.recipe.sampler)}


@torch.no_grad()
def draw_chunk(field: Field, sampler: Sampler, start: int, count: int, shape: tuple[int, ...], seed: int,
               device, labels: torch.Tensor | None = None, null_label: int = 0,
               guidance: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(eps, x1)`` of samples ``start .. start + count - 1``: the standard normal draws and their endpoints
    (``eps`` is the draw ``generate`` would make for those samples, so ``x1`` equals ``fm sample``'s)."""
    noise = BatchNoise(seed, start, count, shape, device)
    if labels is not None:
        cond = labels.to(device)
        field = field.with_condition(cond, torch.full_like(cond, null_label), guidance)
    eps = noise.prior()
    x1 = sampler.run(field, field.path.prior_sample(eps), noise).x
    check_finite(x1)
    return eps, x1


def draw_pairs(source: OpenedRun, folder: Path, manifest: dict[str, Any], device, progress=None) -> int:
    """Draw the chunks of ``folder`` that are missing; returns how many pairs were drawn now."""
    c, n, chunk = source.components, manifest["n"], manifest["chunk"]
    info = c.network.info
    c.network.to(device)
    labels = balanced_labels(n, info.num_classes) if info.num_classes else None
    guidance = float(getattr(c.sampler.options, "guidance", 1.0))
    drawn = 0
    for k in store.missing_chunks(folder, manifest):
        start = k * chunk
        count = min(chunk, n - start)
        chunk_labels = None if labels is None else labels[start:start + count]
        with blame(f"{c.who('sampler')} on {c.who('network')}", "drawing pairs"):
            eps, x1 = draw_chunk(c.field(), c.sampler, start, count, info.shape, manifest["seed"], device,
                                 chunk_labels, info.null_label, guidance)
        store.save_chunk(folder, k, eps, x1, chunk_labels)
        drawn += count
        if progress is not None:
            progress(count)
    return drawn


def one_step_problems(path) -> list[str]:
    """Why one Euler step of the velocity at t = 0 would not land on the endpoint on ``path`` (empty when it
    does: x_0 = eps and x_0 + v(x_0, 0) = z need alpha_0 = 0, beta_0 = 1, d_alpha_0 = 1, d_beta_0 = -1)."""
    if not isinstance(path, GaussianPath):
        return ["distillation needs a Gaussian path"]
    got = [float(v) for v in path.coefficients(torch.zeros(1, dtype=torch.float64))]
    if max(abs(a - b) for a, b in zip(got, (0.0, 1.0, 1.0, -1.0), strict=True)) > 1e-9:
        return [f"one Euler step from t = 0 lands on the endpoint only where x_t = t z + (1 - t) eps near t = 0 "
                f"(alpha, beta, d_alpha, d_beta = 0, 1, 1, -1 at t = 0); this path has {got}: distill a CondOT "
                "run ([path] name = 'condot')"]
    return []


def reflow_recipe(source: OpenedRun, pairs_folder: Path, registry: Registry, *, distill: bool = False,
                  steps: int | None = None, init: bool = False, overrides: list[str] = ()) -> Recipe:
    """The new run's recipe: the source's, trained on the stored pairs (see the module docstring), from the
    source's weights with ``init`` (``[train] init``); ``overrides`` (``TABLE.KEY=VALUE``, not the sampler's) and
    ``steps`` change it."""
    raw = read_toml(source.directory / RECIPE)
    raw["data"] = {"name": "pairs", "path": str(Path(pairs_folder).resolve())}
    raw["coupling"] = {"name": "pairs"}
    objective = raw["objective"]
    if "target" in objective:
        objective["target"] = "conditional"
    if distill:
        problems = one_step_problems(source.components.path)
        if problems:
            raise FmError(f"fm reflow --distill {source.directory}: " + "; ".join(problems))
        raw["objective"] = {"name": "cfm", "target": "conditional", "time_sampling": {"name": "point", "at": 0.0},
                            "cond_dropout": objective.get("cond_dropout", 0.0)}
        raw["sampler"] = {"name": "euler", "steps": 1}
    if steps is not None:
        raw["train"]["steps"] = steps
    if init:
        raw["train"]["init"] = str(source.weights.resolve())
    raw, given = apply_overrides(raw, list(overrides))
    return recipe_from_dict(raw, registry, source=f"fm reflow {source.directory}", base_dir=source.directory,
                            overrides=given)


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b)) for d in _differences(a.get(key), b.get(key), f"{where}.{key}")]
    return [] if a == b else [f"{where.lstrip('.')} = {b!r} there, {a!r} now"]


def check_new_dir(new_dir: Path) -> None:
    """``new_dir`` is absent, empty, or an earlier ``fm reflow`` into it (pairs, perhaps a started run)."""
    if new_dir.exists() and not new_dir.is_dir():
        raise FmError(f"--run-dir {str(new_dir)!r} exists and is not a directory; choose another --run-dir")
    if not new_dir.is_dir():
        return
    contents = {p.name for p in new_dir.iterdir()} - {LOCK}
    if contents and store.read_manifest(new_dir / PAIRS) is None:
        raise FmError(f"--run-dir {str(new_dir)!r} already exists and was not made by fm reflow (no "
                      f"{PAIRS}/{store.MANIFEST}); choose another --run-dir")


def reflow(source: OpenedRun, new_dir: str | Path, n: int, registry: Registry, *, distill: bool = False,
           steps: int | None = None, init: bool = False, overrides: list[str] = (), seed: int = 0, chunk: int = 4096,
           device=None, memory_check: bool = True, progress=None) -> ReflowResult:
    """Draw ``n`` pairs from ``source`` into ``new_dir/pairs`` and train the reflowed (``distill``: one-step)
    run in ``new_dir`` (from the source's weights with ``init``); a rerun continues both. See the module
    docstring."""
    if chunk % BLOCK:
        raise FmError(f"--chunk {chunk}: chunks hold whole noise blocks of {BLOCK} samples; use a multiple of "
                      f"{BLOCK} (e.g. {-(-chunk // BLOCK) * BLOCK})")
    new_dir = Path(new_dir)
    check_new_dir(new_dir)
    recipe = reflow_recipe(source, new_dir / PAIRS, registry, distill=distill, steps=steps, init=init,
                           overrides=overrides)
    new_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(new_dir):
        check_new_dir(new_dir)  # under the lock
        folder = new_dir / PAIRS
        manifest = pairs_manifest(source, n, chunk, seed)
        stored = store.read_manifest(folder)
        if stored is not None and stored != manifest:
            diff = "; ".join(_differences(manifest, stored))
            raise FmError(f"{folder} holds pairs made differently from what this command asks ({diff}); rerun "
                          "fm reflow with the same run, weights, sampler, --pairs, --seed and --chunk to continue "
                          "them, or choose another --run-dir")
        if stored is None:
            store.write_manifest(folder, manifest)
        drawn = draw_pairs(source, folder, manifest, device, progress)
        started = (new_dir / RECIPE).is_file()
        if started:
            there = recipe_from_dict(read_toml(new_dir / RECIPE), registry, base_dir=new_dir).to_dict()
            there["data"]["path"] = str(folder.resolve())  # the run's own pairs (runs before relative paths)
            diff = _differences(recipe.to_dict(), there)
            if diff:
                raise FmError(f"{new_dir} already trains a recipe that differs from what this command asks ("
                              f"{'; '.join(diff)}); rerun with the same options to continue it, or continue it "
                              f"with fm train --resume {new_dir}")
        result = train_locked(recipe, registry, new_dir, resume=started, memory_check=memory_check)
    return ReflowResult(new_dir, drawn, n, result)
