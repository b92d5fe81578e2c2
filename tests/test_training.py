"""The training loop: the non-finite guard, schedules, EMA, precision (interruption and exact resume:
tests/test_interrupt.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from fmcore.recipe.recipe import load_recipe
from fmcore.recipe.train_options import TrainOptions
from fmcore.run import checkpoint as ckpt
from fmcore.run.ema import EMA
from fmcore.run.training import lr_factor, train
from tests.conftest import MOONS

FM = [sys.executable, "-m", "fmcore"]


def _recipe_text(**train: object) -> str:
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in train.items())
    return MOONS.replace("[train]\nsteps = 20\nbatch_size = 64\nlog_every = 10\n", f"[train]\n{lines}\n")


def test_nonfinite_loss_stops_naming_the_step_and_keeps_last_checkpoint(tmp_path, write_recipe, fm):
    """One row of the data is 3e38 (finite, so the data set accepts it): the first batch that draws it makes the
    loss overflow to inf."""
    import numpy as np

    data = np.random.default_rng(0).normal(size=(3000, 2)).astype(np.float32)
    data[1234] = 3e38
    np.save(tmp_path / "data.npy", data)
    text = _recipe_text(steps=400, batch_size=64, checkpoint_every=5, log_every=5)
    recipe = write_recipe(text.replace('name = "moons"', 'name = "file"\npath = "data.npy"'))
    code, _, err = fm("train", recipe, "--run-dir", tmp_path / "run")
    assert code == 2 and "Traceback" not in err
    assert "the loss became non-finite at step" in err
    step = int(err.split("non-finite at step ")[1].split(";")[0])
    last = ckpt.checkpoint_dirs(tmp_path / "run")[-1]
    assert f"the last good checkpoint, {last}, is intact" in err
    assert int(last.name[len(ckpt.PREFIX):]) < step
    weights, _ = ckpt.load_tensors(last / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_lr_schedule_warmup_then_cosine_and_linear():
    o = TrainOptions(steps=110, warmup=10, schedule="cosine")
    assert [lr_factor(s, o) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert lr_factor(10, o) == 1.0 and lr_factor(60, o) == pytest.approx(0.5) and lr_factor(110, o) == 0.0
    lin = TrainOptions(steps=110, warmup=10, schedule="linear")
    assert lr_factor(60, lin) == pytest.approx(0.5)
    assert lr_factor(100, TrainOptions(steps=110)) == 1.0


def test_ema_follows_its_formula_with_warmup():
    net = torch.nn.Linear(3, 2)
    ema = EMA(net, decay=0.99, warmup=True)
    start = [p.detach().clone() for p in net.parameters()]
    expected = [s.clone() for s in start]
    for n in range(30):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.1)
        d = min(0.99, (1 + n) / (10 + n))
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, net.parameters(), strict=True)]
        ema.update()
    for e, s in zip(expected, ema.shadow, strict=True):
        torch.testing.assert_close(s, e)


def test_optimizer_state_roundtrips_through_safetensors(tmp_path):
    net = torch.nn.Linear(4, 4)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.1)
    net(torch.randn(2, 4)).sum().backward()
    opt.step()
    tensors, meta = ckpt.optimizer_tensors(opt.state_dict())
    ckpt.save_tensors(tensors, tmp_path / "opt.safetensors", meta)
    loaded, meta2 = ckpt.load_tensors(tmp_path / "opt.safetensors")
    state = ckpt.optimizer_state(loaded, meta2)
    ref = opt.state_dict()
    assert state["param_groups"] == json.loads(json.dumps(ref["param_groups"]))
    for idx, entry in ref["state"].items():
        for key, value in entry.items():
            torch.testing.assert_close(state["state"][idx][key], value)


def test_training_writes_the_run_directory(tmp_path, write_recipe, registry):
    recipe = load_recipe(write_recipe(_recipe_text(steps=30, batch_size=64, log_every=10, ema=0.9)), registry)
    result = train(recipe, registry, tmp_path / "run")
    run = result.run_dir
    for name in ("recipe.toml", "model.safetensors", "ema.safetensors", "metrics.jsonl", "samples.png", "loss.png"):
        assert (run / name).is_file(), name
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert {"loss", "lr", "grad_norm", "steps_per_s", "samples_per_s"} <= set(rows[0])
    again = load_recipe(run / "recipe.toml", registry)
    assert again.choices == recipe.choices and again.train == recipe.train
    provenance = json.loads((run / "components.json").read_text())
    assert provenance["[sampler]"]["package"] == "fmcore-samplers" and "[sampler.grid]" in provenance


def test_fp16_without_cuda_is_refused_clearly(tmp_path, write_recipe, fm):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: fp16 is allowed")
    code, _, err = fm("train", write_recipe(_recipe_text(steps=5, mixed_precision="fp16")), "--run-dir",
                      tmp_path / "run")
    assert code == 2 and "mixed_precision = 'fp16' needs a CUDA GPU" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 mixed precision needs CUDA")
def test_fp16_trains_on_cuda_and_counts_skipped_steps(tmp_path, write_recipe):
    recipe = write_recipe(_recipe_text(steps=50, batch_size=64, log_every=10, mixed_precision="fp16"))
    subprocess.run([*FM, "train", recipe, "--run-dir", tmp_path / "run"], check=True)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all("skipped_steps" in r for r in rows) and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)


def test_bf16_trains_on_cpu_in_its_own_process(tmp_path, write_recipe):
    """bf16 autocast runs on the CPU (in a subprocess: accelerate's state is per process)."""
    recipe = write_recipe(_recipe_text(steps=20, batch_size=64, log_every=10, mixed_precision="bf16"))
    proc = subprocess.run([*FM, "train", recipe, "--run-dir", tmp_path / "run"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "precision bf16" in proc.stdout
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"]


def test_network_without_parameters_is_refused(tmp_path, write_recipe, fm):
    text = MOONS.replace('name = "moons"', 'name = "8gaussians"').replace('name = "mlp"\nhidden = [32, 32]',
                                                                        'name = "oracle"')
    code, _, err = fm("train", write_recipe(text), "--run-dir", tmp_path / "run")
    assert code == 2 and "[network] oracle (fmcore-networks" in err and "no trainable parameters" in err
    assert "fm oracle" in err


def test_init_starts_from_given_weights_and_the_ema_with_them(tmp_path, write_recipe, registry):
    from fmcore.run.training import Trainer

    source = train(load_recipe(write_recipe(_recipe_text(steps=30, batch_size=64, ema=0.9)), registry),
                   registry, tmp_path / "source").run_dir
    weights, _ = ckpt.load_tensors(source / "ema.safetensors")
    recipe = load_recipe(write_recipe(_recipe_text(steps=5, batch_size=64, ema=0.9,
                                                   init=str(source / "ema.safetensors"))), registry)
    trainer = Trainer(recipe, registry, tmp_path / "new")
    for name, value in trainer.net.state_dict().items():
        assert torch.equal(value, weights[name]), name
    for name, value in zip(trainer.ema.names, trainer.ema.shadow, strict=True):
        assert torch.equal(value, weights[name]), name
    fresh = Trainer(load_recipe(write_recipe(_recipe_text(steps=5, batch_size=64, ema=0.9)), registry), registry,
                    tmp_path / "fresh")
    assert not all(torch.equal(v, weights[k]) for k, v in fresh.net.state_dict().items())


def test_init_relative_to_the_recipe_and_not_needed_once_a_checkpoint_exists(tmp_path, write_recipe, fm):
    source = tmp_path / "source"
    assert fm("train", write_recipe(_recipe_text(steps=20, batch_size=64)), "--run-dir", source)[0] == 0
    (tmp_path / "init.safetensors").write_bytes((source / "model.safetensors").read_bytes())
    recipe = tmp_path / "init.toml"  # beside init.safetensors: the relative path is found from the recipe
    recipe.write_text(_recipe_text(steps=20, batch_size=64, checkpoint_every=10, init="init.safetensors"))
    code, _, err = fm("train", recipe, "--run-dir", tmp_path / "new")
    assert code == 0, err
    (tmp_path / "init.safetensors").unlink()
    # resuming continues from the checkpoint; the init file is no longer read
    code, _, err = fm("train", "--resume", tmp_path / "new", "--set", "train.steps=30")
    assert code == 0, err


@pytest.mark.parametrize("problem", ["missing", "other network", "not safetensors", "nan"])
def test_init_problems_are_bad_input(tmp_path, write_recipe, fm, problem):
    source = tmp_path / "source"
    assert fm("train", write_recipe(_recipe_text(steps=10, batch_size=64)), "--run-dir", source)[0] == 0
    init = {"missing": tmp_path / "nope.safetensors", "other network": source / "model.safetensors",
            "not safetensors": source / "recipe.toml", "nan": tmp_path / "nan.safetensors"}[problem]
    if problem == "nan":
        tensors, meta = ckpt.load_tensors(source / "model.safetensors")
        tensors[next(iter(tensors))][0] = float("nan")
        save_file(tensors, init, metadata=meta)
    text = _recipe_text(steps=10, batch_size=64, init=str(init))
    if problem == "other network":
        text = text.replace("hidden = [32, 32]", "hidden = [48, 32]")
    code, _, err = fm("train", write_recipe(text), "--run-dir", tmp_path / "new")
    assert code == 2 and "Traceback" not in err, err
    assert err.startswith("error: [train] init"), err
    expected = {"missing": "no such file", "other network": "hidden = [48, 32] in the recipe, but the weights were "
                "made with hidden = [32, 32]", "not safetensors": "is not a readable safetensors file",
                "nan": "holds non-finite (NaN or inf) values in 1 tensor(s)"}[problem]
    assert expected in err, err


def test_recipe_check_reads_the_init_weights(tmp_path, write_recipe, fm):
    source = tmp_path / "source"
    assert fm("train", write_recipe(_recipe_text(steps=10, batch_size=64)), "--run-dir", source)[0] == 0
    good = _recipe_text(steps=10, batch_size=64, init=str(source / "model.safetensors"))
    assert fm("recipe", "check", write_recipe(good))[0] == 0
    code, _, err = fm("recipe", "check", write_recipe(good.replace("hidden = [32, 32]", "hidden = [32, 32, 32]")))
    assert code == 2 and err.startswith("error: [train] init: ") and "hidden = [32, 32, 32] in the recipe" in err
