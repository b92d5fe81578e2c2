"""fm reflow: pairs reproducible (equal to fm sample's endpoints), resumable after an interruption, the pairs
data set and coupling feeding the loss, one-step distillation's objective, exact resume of the new run, the
straightness measure, and every user error exiting 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import fmcore
from fmcore.core.dataset import Batch
from fmcore.core.noise import BatchNoise
from fmcore.core.prediction import Prediction
from fmcore.plugins.loading import PluginHost
from fmcore.recipe.build import build
from fmcore.recipe.recipe import load_recipe
from fmcore.run import pairs as store
from fmcore.run import reflow as reflow_module
from fmcore.run.lock import RunLock
from fmcore.run.metrics import straightness
from fmcore.run.rundir import resolve_device
from fmcore.run.training import train
from tests.conftest import MOONS

PAIRS = 200
CHUNK = 64  # 4 chunks, the last one partial


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A tiny trained moons run (CondOT, stable target, as examples/recipes/moons.toml)."""
    folder = tmp_path_factory.mktemp("source")
    (folder / "recipe.toml").write_text(MOONS.replace('name = "cfm"', 'name = "cfm"\ntarget = "stable"'))
    registry = PluginHost().registry()
    train(load_recipe(folder / "recipe.toml", registry), registry, folder / "run")
    return folder / "run"


def reflow_args(source, new, *extra):
    return ("reflow", source, "--pairs", PAIRS, "--chunk", CHUNK, "--run-dir", new, "--steps", 10, *extra)


def chunk_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("chunk_*.safetensors"))}


def test_pairs_are_fm_sample_endpoints_and_reproducible(fm, source, tmp_path):
    code, out, err = fm(*reflow_args(source, tmp_path / "new"))
    assert code == 0, err
    assert f"pairs: {PAIRS} drawn now" in out
    folder = tmp_path / "new" / "pairs"
    assert len(chunk_bytes(folder)) == 4
    noise, data, labels, classes = store.load_pairs(folder)
    assert labels is None and classes == 0 and noise.shape == data.shape == (PAIRS, 2)
    # the noise is sample i's prior draw and the endpoint is what fm sample draws for sample i
    assert torch.equal(noise, BatchNoise(0, 0, PAIRS, (2,), "cpu").prior())
    on = resolve_device(None)  # fm reflow draws on the default device, as fm sample does (cuda where there is one)
    again = fmcore.load_run(source).sample(PAIRS, seed=0, device=on).cpu()
    if on.type == "cpu":
        assert torch.equal(data, again)
    else:  # GPU kernels round differently for different batch sizes (reflow draws in chunks)
        torch.testing.assert_close(data, again, rtol=1e-5, atol=1e-5)
    # a chunk drawn again (alone) is byte-identical; a rerun trains nothing new and draws nothing
    first = chunk_bytes(folder)
    (folder / "chunk_000002.safetensors").unlink()
    code, out, _ = fm(*reflow_args(source, tmp_path / "new"))
    assert code == 0 and f"pairs: {CHUNK} drawn now, {PAIRS - CHUNK} kept from before" in out
    assert chunk_bytes(folder) == first


def test_interrupted_draw_resumes_to_the_same_pairs(source, tmp_path, registry):
    fmcore.reflow(source, tmp_path / "ref", PAIRS, chunk=CHUNK, steps=10, registry=registry)
    seen = []

    def stop_after_two_chunks(count):
        seen.append(count)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fmcore.reflow(source, tmp_path / "new", PAIRS, chunk=CHUNK, steps=10, registry=registry,
                      progress=stop_after_two_chunks)
    assert len(chunk_bytes(tmp_path / "new" / "pairs")) == 2
    assert not (tmp_path / "new" / "recipe.toml").exists()
    result = fmcore.reflow(source, tmp_path / "new", PAIRS, chunk=CHUNK, steps=10, registry=registry)
    assert result.pairs_drawn == PAIRS - 2 * CHUNK
    assert chunk_bytes(tmp_path / "new" / "pairs") == chunk_bytes(tmp_path / "ref" / "pairs")
    model = "model.safetensors"
    assert (tmp_path / "new" / model).read_bytes() == (tmp_path / "ref" / model).read_bytes()


def test_pairs_data_and_coupling_feed_the_loss(fm, source, tmp_path, registry):
    fm(*reflow_args(source, tmp_path / "new"))
    recipe = load_recipe(tmp_path / "new" / "recipe.toml", registry)
    assert (recipe.data.name, recipe.coupling.name, recipe.objective.options.target) == ("pairs", "pairs",
                                                                                           "conditional")
    c = build(recipe, registry)
    noise, data, _, _ = store.load_pairs(tmp_path / "new" / "pairs")
    batch = c.dataset.sample(500, torch.Generator().manual_seed(3))
    # every row of a batch is a stored pair
    rows = {tuple(map(float, pair)) for pair in torch.cat([noise, data], 1)}
    assert all(tuple(map(float, pair)) in rows for pair in torch.cat([batch.noise, batch.x], 1))

    class Zero(torch.nn.Module):
        def forward(self, x, t, cond=None):
            return torch.zeros_like(x)

    # CondOT + CFM: the target z - eps does not depend on t, so a zero network's loss is mean ||x1 - eps||^2
    # over the stored pairs exactly; with fresh noise it would not be
    loss = c.objective.loss(Zero(), c.path, batch)
    assert float(loss) == pytest.approx(float(((batch.x - batch.noise) ** 2).mean()), rel=1e-6)
    with pytest.raises(fmcore.FmError, match="came with no noise"):
        c.objective.loss(Zero(), c.path, Batch(batch.x))


def test_distill_trains_the_velocity_at_t0_and_samples_in_one_step(fm, source, tmp_path, registry):
    code, _, err = fm(*reflow_args(source, tmp_path / "d", "--distill"))
    assert code == 0, err
    recipe = load_recipe(tmp_path / "d" / "recipe.toml", registry)
    assert recipe.objective.options.time_sampling.name == "point"
    assert (recipe.sampler.name, recipe.sampler.options.steps) == ("euler", 1)
    c = build(recipe, registry)
    assert c.objective.prediction is Prediction.VELOCITY
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x, t, cond=None):
            seen.append(t.clone())
            return torch.zeros_like(x)

    batch = c.dataset.sample(64, torch.Generator().manual_seed(0))
    c.objective.loss(Spy(), c.path, batch)
    assert torch.equal(seen[0], torch.zeros(64))
    # one Euler step of a field whose velocity at t = 0 is x1 - eps lands on x1
    field = fmcore.load_run(tmp_path / "d").field()
    x0 = batch.noise
    v = field.velocity(x0, torch.zeros(()))
    x1 = c.sampler.run(field, x0, BatchNoise(0, 0, 64, (2,), "cpu")).x
    assert torch.allclose(x1, x0 + v, atol=1e-6)


def test_reflow_run_resumes_bitwise(source, tmp_path, registry):
    sets = ["train.checkpoint_every=5", "train.keep_checkpoints=5", "train.ema=0.9"]
    fmcore.reflow(source, tmp_path / "ref", PAIRS, chunk=CHUNK, steps=10, overrides=sets, registry=registry)
    run = tmp_path / "run"
    shutil.copytree(tmp_path / "ref", run)
    shutil.rmtree(run / "checkpoints" / "step_00000010")
    for name in ("model.safetensors", "ema.safetensors"):
        (run / name).unlink()
    result = fmcore.reflow(source, run, PAIRS, chunk=CHUNK, steps=10, overrides=sets, registry=registry)
    assert result.pairs_drawn == 0
    for name in ("model.safetensors", "ema.safetensors"):
        assert (run / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name


def test_straightness_of_known_paths():
    t = torch.linspace(0, 1, 2001, dtype=torch.float64)
    line = torch.stack([2 * t, -t], -1)[:, None]  # [K + 1, 1, 2]
    assert straightness(line, t) == pytest.approx(0.0, abs=1e-20)
    parabola = torch.stack([t, t**2], -1)[:, None]  # v - chord = (0, 2t - 1): integral 1/3
    assert straightness(parabola, t) == pytest.approx(1 / 3, rel=1e-3)
    assert straightness(parabola, 5 + 2 * t) == pytest.approx(1 / 3, rel=1e-3)  # any time span


def test_user_errors_exit_2(fm, source, tmp_path, write_recipe):
    code, _, err = fm("reflow", source, "--pairs", 100, "--chunk", 100, "--run-dir", tmp_path / "a")
    assert code == 2 and "multiple of 64" in err
    code, _, err = fm("reflow", source, "--pairs", 100, "--run-dir", source)
    assert code == 2 and "not made by fm reflow" in err
    code, _, err = fm("reflow", tmp_path / "nothing", "--pairs", 100, "--run-dir", tmp_path / "b")
    assert code == 2 and "not found" in err
    with pytest.raises(SystemExit) as exc:  # argparse: exit 2 with the usage line
        fm("reflow", source, "--pairs", 0, "--run-dir", tmp_path / "b")
    assert exc.value.code == 2
    assert fm(*reflow_args(source, tmp_path / "new"))[0] == 0
    code, _, err = fm("reflow", source, "--pairs", PAIRS + 64, "--chunk", CHUNK, "--run-dir", tmp_path / "new")
    assert code == 2 and f"n = {PAIRS} there, {PAIRS + 64} now" in err
    code, _, err = fm(*reflow_args(source, tmp_path / "new", "--set", "train.lr=0.1"))
    assert code == 2 and "train.lr" in err and "fm train --resume" in err
    code, _, err = fm(*reflow_args(source, tmp_path / "new", "--set", "sampler.steps=3"))
    assert code == 2 and "sampler" in err
    with RunLock(tmp_path / "new"):
        code, _, err = fm(*reflow_args(source, tmp_path / "new"))
    assert code == 2 and "another" in err
    vp = write_recipe(MOONS.replace('"condot"', '"vp"').replace('name = "cfm"', 'name = "cfm"\nt_eps = 1e-3'),
                      "vp.toml")
    assert fm("train", vp, "--run-dir", tmp_path / "vp", "--set", "train.steps=2")[0] == 0
    code, _, err = fm("reflow", tmp_path / "vp", "--pairs", 64, "--run-dir", tmp_path / "dvp", "--distill")
    assert code == 2 and "condot" in err


def test_recipe_check_ties_pairs_data_and_coupling(fm, source, tmp_path, write_recipe):
    assert fm(*reflow_args(source, tmp_path / "new"))[0] == 0
    pairs = tmp_path / "new" / "pairs"
    base = MOONS.replace('name = "moons"', f'name = "pairs"\npath = "{pairs}"')
    code, _, err = fm("recipe", "check", write_recipe(base, "a.toml"))
    assert code == 2 and "set [coupling] name = 'pairs'" in err
    code, _, err = fm("recipe", "check", write_recipe(MOONS + '\n[coupling]\nname = "pairs"\n', "b.toml"))
    assert code == 2 and "stores none" in err
    stable = base.replace('name = "cfm"', 'name = "cfm"\ntarget = "stable"') + '\n[coupling]\nname = "pairs"\n'
    code, _, err = fm("recipe", "check", write_recipe(stable, "c.toml"))
    assert code == 2 and "target = 'conditional'" in err
    assert fm("recipe", "check", write_recipe(base + '\n[coupling]\nname = "pairs"\n', "d.toml"))[0] == 0
    (pairs / "chunk_000001.safetensors").unlink()
    code, _, err = fm("recipe", "check", write_recipe(base + '\n[coupling]\nname = "pairs"\n', "e.toml"))
    assert code == 2 and "incomplete" in err and "chunk_000001" in err
    assert set(load_file(pairs / "chunk_000000.safetensors")) == {"noise", "data"}
    assert reflow_module.one_step_problems(build(load_recipe(write_recipe(), PluginHost().registry()),
                                                 PluginHost().registry()).path) == []


def test_init_starts_the_new_run_from_the_weights_that_drew_the_pairs(fm, source, tmp_path, registry):
    weights = fmcore.load_run(source).weights  # the EMA's where the run has one, as the pairs are drawn
    sets = ["train.lr=1e-12", "train.warmup=0"]  # one step at this rate leaves the weights where they started
    code, _, err = fm(*reflow_args(source, tmp_path / "new", "--init", "--steps", 1, *[f"--set={s}" for s in sets]))
    assert code == 0, err
    assert load_recipe(tmp_path / "new" / "recipe.toml", registry).train.init == str(weights.resolve())
    start, after = load_file(weights), load_file(tmp_path / "new" / "model.safetensors")
    assert all(torch.allclose(after[k], v, rtol=0, atol=1e-9) for k, v in start.items())
    fm(*reflow_args(source, tmp_path / "scratch", "--steps", 1, *[f"--set={s}" for s in sets]))
    scratch = load_file(tmp_path / "scratch" / "model.safetensors")
    assert not all(torch.allclose(scratch[k], v, rtol=0, atol=1e-3) for k, v in start.items())


def test_a_reflowed_run_can_be_moved_with_its_pairs(fm, source, tmp_path, registry):
    assert fm(*reflow_args(source, tmp_path / "new", "--set=train.checkpoint_every=5"))[0] == 0
    assert load_recipe(tmp_path / "new" / "recipe.toml", registry).data.options.path == str(
        (tmp_path / "new" / "pairs").resolve())
    assert 'path = "pairs"' in (tmp_path / "new" / "recipe.toml").read_text()  # written relative to the run
    shutil.move(tmp_path / "new", tmp_path / "moved")
    code, _, err = fm("sample", tmp_path / "moved", "--n", 8, "--out", tmp_path / "x.npy")
    assert code == 0, err
    code, out, err = fm(*reflow_args(source, tmp_path / "moved", "--set=train.checkpoint_every=5"))
    assert code == 0 and "pairs: 0 drawn now" in out, err
    code, _, err = fm("train", "--resume", tmp_path / "moved", "--set", "train.steps=15")
    assert code == 0, err
