"""The plugin contract (issue 12): every registered sampler x path x objective x network x data set combination,
built through the library check. The check accepts exactly the combinations that then train for a step and
sample to finite values, and refuses the others before step 1 with a message naming both sides. Plus the four
failures the issue listed, each as a test."""

from __future__ import annotations

import itertools
import math
import types

import attrs
import numpy as np
import pytest
import torch

from fmcore import Batch, PathSample, ProbabilityPath, Sampler, hookimpl
from fmcore.plugins.loading import PluginHost
from fmcore.recipe.build import IncompatibleError, build
from fmcore.recipe.recipe import RecipeError, recipe_from_dict
from fmcore.run import pairs
from fmcore.run.sampling import generate
from tests.conftest import MOONS
from tests.tables import write_image_folder


@attrs.define(kw_only=True)
class CubicOptions:
    """No options."""


class CubicPath(ProbabilityPath):
    """A non-Gaussian path: x_t = t z + (1 - t) e with e = eps^3 / sqrt(15) (a unit-variance, non-Gaussian prior)."""

    Options = CubicOptions

    def __init__(self, options):
        self.options = options

    def prior_sample(self, eps):
        return eps**3 / math.sqrt(15.0)

    def sample(self, z, t, eps):
        tt = t.reshape(-1, *([1] * (z.ndim - 1)))
        return PathSample(x=tt * z + (1 - tt) * self.prior_sample(eps), t=t, z=z, eps=eps)

    def conditional_velocity(self, x, z, t):
        tt = t.reshape(-1, *([1] * (z.ndim - 1)))
        return (z - x) / (1 - tt)


@hookimpl
def register_paths(register):
    register("cubic", CubicPath)


TEST_PLUGIN = types.SimpleNamespace(register_paths=register_paths)

NETWORK_OPTIONS = {
    "mlp": {"hidden": [8]},
    "unet": {"channels": 8, "channel_mult": [1, 2], "blocks_per_level": 1, "attention_levels": []},
    "oracle": {"max_points": 64},
}


@pytest.fixture(scope="module")
def contract(tmp_path_factory):
    """A host with every installed plugin plus the non-Gaussian test path, and data files for file data sets."""
    host = PluginHost()
    host.register(TEST_PLUGIN, "contract-test-paths")
    root = tmp_path_factory.mktemp("contract")
    np.save(root / "points.npy", np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32))
    write_image_folder(root / "images", seed=1)
    rng = np.random.default_rng(1)
    pairs.write_manifest(root / "pairs", {"n": 64, "chunk": 64, "shape": [2], "num_classes": 0})
    pairs.save_chunk(root / "pairs", 0, torch.randn(64, 2), torch.randn(64, 2), None)
    (root / "shards").mkdir()
    for k in range(2):
        np.save(root / "shards" / f"s{k}.npy", rng.normal(size=(32, 2)).astype(np.float32))
    data_options = {"file": {"path": str(root / "points.npy")},
                    "image_folder": {"path": str(root / "images"), "size": 8}, "pairs": {"path": str(root / "pairs")},
                    "shards": {"path": str(root / "shards")}}
    return host, host.registry(), data_options


def _recipe(registry, data_options, sampler, path, objective, network, data):
    raw = {"data": {"name": data, **data_options.get(data, {})}, "path": {"name": path},
           "objective": {"name": objective}, "network": {"name": network, **NETWORK_OPTIONS.get(network, {})},
           "sampler": {"name": sampler, "steps": 2}, "train": {"batch_size": 8}}
    return recipe_from_dict(raw, registry, source="combo")


def _trains_and_samples(c, train: bool) -> tuple[bool, str]:
    """One optimiser step (when ``train``) and 8 samples, all finite."""
    info = c.dataset.info
    if train:
        batch = c.dataset.sample(8, torch.Generator().manual_seed(0))
        loss = c.objective.loss(c.network, c.path, Batch(batch.x, batch.labels), info.null_label)
        loss.backward()
        if not bool(torch.isfinite(loss)):
            return False, f"loss {float(loss)}"
    c.network.eval()
    x = generate(c.field(), c.sampler, 8, info.shape, seed=0).x
    return bool(torch.isfinite(x).all()), "non-finite samples"


def test_every_combination_is_checked_exactly(contract, monkeypatch):
    monkeypatch.setenv("FMCORE_SKIP_MEMORY_CHECK", "1")  # tiny components; the preflight is tested on its own
    host, registry, data_options = contract
    names = {kind: registry.names(kind) for kind in ("sampler", "path", "objective", "network", "dataset")}
    assert "cubic" in names["path"] and "oracle" in names["network"]
    accepted = refused = 0
    for sampler, path, objective, network, data in itertools.product(
            names["sampler"], names["path"], names["objective"], names["network"], names["dataset"]):
        combo = f"{sampler} x {path} x {objective} x {network} x {data}"
        try:
            recipe = _recipe(registry, data_options, sampler, path, objective, network, data)
        except RecipeError as exc:
            pytest.fail(f"{combo}: the recipe itself was refused: {exc}")
        trainable = registry.get("network", network).cls.trainable
        try:
            torch.manual_seed(0)
            c = build(recipe, registry, training=trainable)
        except IncompatibleError as exc:
            refused += 1
            message = str(exc)
            sides = [f"[{t}] " for t in ("sampler", "path", "objective", "network", "data", "coupling")
                     if f"[{t}] " in message or f"[{t}." in message]
            assert len(sides) >= 2, f"{combo}: the refusal does not name both sides: {message}"
            continue
        accepted += 1
        ok, why = _trains_and_samples(c, trainable)
        assert ok, f"{combo} passed the check but did not train and sample: {why}"
    print(f"{accepted} accepted, {refused} refused")
    assert accepted > 0 and refused > 0


def test_non_gaussian_path_with_a_score_sampler_is_refused_before_training(contract, fm, write_recipe, tmp_path):
    host, _, _ = contract
    recipe = write_recipe("""
        [data]
        name = "moons"
        [path]
        name = "cubic"
        [objective]
        name = "cfm"
        [network]
        name = "mlp"
        hidden = [8]
        [sampler]
        name = "langevin"
        [train]
        steps = 5
        """)
    code, _out, err = fm("train", recipe, "--run-dir", tmp_path / "run", host=host)
    assert code == 2 and "Traceback" not in err
    assert "[sampler] langevin (fmcore-samplers" in err and "needs the score" in err
    assert "[path] cubic (<in-process>)" in err and "is not Gaussian" in err
    assert not (tmp_path / "run").exists(), "refused before anything was written"


def test_angle_grid_on_a_non_gaussian_path_is_refused_by_check(contract, fm, write_recipe):
    host, _, _ = contract
    recipe = write_recipe("""
        [data]
        name = "moons"
        [path]
        name = "cubic"
        [objective]
        name = "cfm"
        [network]
        name = "mlp"
        [sampler]
        name = "heun"
        grid = "angle"
        """)
    code, _out, err = fm("recipe", "check", recipe, host=host)
    assert code == 2 and "Traceback" not in err
    assert "[sampler.grid] angle (fmcore-samplers" in err and "needs a Gaussian path" in err and "[path] cubic" in err


def test_four_independent_mistakes_in_three_tables_are_reported_at_once(fm, write_recipe):
    recipe = write_recipe("""
        [data]
        name = "moons"
        noise = -1.0
        [path]
        name = "condot"
        sigmamin = 0.1
        [objective]
        name = "cfm"
        [network]
        name = "mlp"
        hiden = [8]
        widht = 3
        [train]
        steps = 0
        """)
    code, _out, err = fm("recipe", "check", recipe)
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1
    assert f"error: {recipe} has 5 problems:" in err
    for expected in ("[data] noise = -1.0: expected a finite number >= 0",
                     "[path]: unknown option 'sigmamin' (did you mean 'sigma_min'?)",
                     "[network]: unknown option 'hiden' (did you mean 'hidden'?)",
                     "[network]: unknown option 'widht'",
                     "[train] steps = 0: expected an integer in 1 .. 1,000,000,000,000"):
        assert expected in err, expected


def test_set_overrides_are_blamed_on_set_not_on_the_file(fm, write_recipe):
    code, _out, err = fm("recipe", "check", write_recipe(), "--set", "sampler.steps=-3")
    assert code == 2
    assert "[sampler] steps = -3: expected an integer in 1 .. 10,000,000 (given by --set sampler.steps=-3)" in err


def test_oracle_run_on_images_evaluates(fm, write_recipe, tmp_path):
    """`fm oracle` then `fm eval` on image data: the exact field is bound when the run is built."""
    recipe = write_recipe("""
        [data]
        name = "digits"
        [path]
        name = "condot"
        [objective]
        name = "cfm"
        [network]
        name = "unet"
        [sampler]
        name = "euler"
        steps = 4
        """)
    code, out, err = fm("oracle", recipe, "--run-dir", tmp_path / "run")
    assert code == 0, err
    code, out, err = fm("eval", tmp_path / "run", "--n", "64", "--json")
    assert code == 0, err
    assert "nn_ratio" in out


def test_schema_accepts_the_recipe_table_name(fm):
    code, out, err = fm("recipe", "schema", "data", "moons")
    assert code == 0, err
    assert "[data] name = 'moons'" in out


class Exploding(Sampler):
    """A sampler whose step fails (torch raises a RuntimeError on mismatched shapes)."""

    def step(self, field, x, t, t_next, noise):
        return x + torch.ones(3, 5) @ torch.ones(4, 2)


@hookimpl
def register_samplers(register):
    register("exploding", Exploding)


def test_an_exception_in_component_code_names_the_component_and_its_package(fm, write_recipe, tmp_path):
    host = PluginHost()
    host.register(types.SimpleNamespace(register_samplers=register_samplers), "exploding-plugin", "exploding-pkg",
                  "1.0")
    recipe = write_recipe(MOONS.replace('name = "mlp"\nhidden = [32, 32]', 'name = "oracle"'))
    code, _out, err = fm("oracle", recipe, "--run-dir", tmp_path / "run", host=host)
    assert code == 0, err
    code, _out, err = fm("sample", tmp_path / "run", "--sampler", "exploding", "--out", tmp_path / "x.npy", host=host)
    assert code == 2 and "Traceback" not in err
    assert "[sampler] exploding (exploding-pkg 1.0) on [network] oracle (fmcore-networks" in err
    assert "failed while sampling: RuntimeError: mat1 and mat2 shapes cannot be multiplied" in err
    assert not (tmp_path / "x.npy").exists()
