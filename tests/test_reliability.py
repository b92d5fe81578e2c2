"""Issue 17, in-process: every exception is one paragraph (exit 2 for bad input, 1 for internal errors), the
memory preflight, bounds on counts, inputs checked where they enter, checked run metadata, the run lock, the
wall-time checkpoint cadence and metrics truncation. Subprocess tests with signals: tests/test_interrupt.py."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from fmcore import api
from fmcore.cli import main as cli_main
from fmcore.core.errors import FmError, user_error
from fmcore.recipe import preflight
from fmcore.run import checkpoint as ckpt
from fmcore.run.lock import RunLock
from tests.conftest import MOONS

TRAIN = "[train]\nsteps = 20\nbatch_size = 64\nlog_every = 10\n"


def _error(fm, *args, code: int = 2) -> str:
    """Run ``fm ARGS``; the exit code is ``code`` and stderr one paragraph, without a traceback."""
    got, out, err = fm(*args)
    assert got == code, (got, out, err)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and err.endswith(lines[0] + "\n"), err  # one paragraph, the last thing printed
    return lines[0]


@pytest.fixture
def alarm():
    """Fail (instead of hanging) when the test body takes over 60 s."""

    def boom(*_):
        raise TimeoutError("hung")

    before = signal.signal(signal.SIGALRM, boom)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, before)


@pytest.fixture
def trained(tmp_path, write_recipe, fm):
    """A small finished run with EMA weights and a checkpoint every 10 steps."""
    recipe = write_recipe(MOONS.replace(TRAIN, TRAIN + "ema = 0.9\ncheckpoint_every = 10\n"))
    code, _, err = fm("train", recipe, "--run-dir", tmp_path / "run")
    assert code == 0, err
    return tmp_path / "run"


# -- the boundary ---------------------------------------------------------------------------------------
def test_internal_error_exits_1_says_so_and_shows_a_traceback_only_with_debug(fm, monkeypatch, write_recipe):
    def broken(*_a, **_k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(api, "load_recipe", broken)
    err = _error(fm, "recipe", "check", write_recipe(), code=1)
    assert err.startswith("error: internal error: ZeroDivisionError: a bug. This is a bug in fmcore or in a plugin")
    assert "fm --debug" in err
    code, _, err = fm("--debug", "recipe", "check", write_recipe())
    assert code == 1 and "Traceback (most recent call last)" in err and "ZeroDivisionError: a bug" in err
    monkeypatch.setenv("FMCORE_DEBUG", "1")
    code, _, err = fm("recipe", "check", write_recipe())
    assert code == 1 and "Traceback (most recent call last)" in err


@pytest.mark.parametrize(("exc", "expected"), [
    (PermissionError(13, "Permission denied", "/runs/x"), "'/runs/x': Permission denied: permission denied"),
    (NotADirectoryError(20, "Not a directory", "/a/file/run"), "a part of the path is a file"),
    (FileExistsError(17, "File exists", "/a/b"), "it already exists"),
    (IsADirectoryError(21, "Is a directory", "/a/b"), "it is a directory, where a file is expected"),
    (OSError(40, "Too many levels of symbolic links", "/a/loop"), "a loop of symbolic links"),
    (OSError(28, "No space left on device", "/a/b"), "no space left"),
    (MemoryError(), "out of memory: the machine could not provide the memory"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: not enough memory: you tried to "
                  "allocate 40000000000 bytes."), "an allocation of 37.3 GiB failed"),
])
def test_user_errors_from_the_environment_are_exit_2(exc, expected):
    mapped = user_error(exc)
    assert mapped is not None and mapped.exit_code == 2 and expected in str(mapped), mapped


def test_bugs_stay_internal():
    for exc in (ValueError("x"), KeyError("k"), RuntimeError("shape mismatch"), RecursionError(), OSError("plain")):
        assert user_error(exc) is None


def test_python_api_raises_fm_errors_for_paths(tmp_path, write_recipe):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FmError, match="a part of the path is a file"):
        api.train(api.load_recipe(write_recipe()), tmp_path / "file" / "run")


def test_run_dir_and_out_paths_that_cannot_be_written(fm, write_recipe, trained, tmp_path):
    (tmp_path / "file").write_text("x")
    err = _error(fm, "train", write_recipe(), "--run-dir", tmp_path / "file" / "run")
    assert f"'{tmp_path / 'file' / 'run'}': Not a directory: a part of the path is a file" in err
    err = _error(fm, "train", write_recipe(), "--run-dir", tmp_path / "file")
    assert "exists and is not a directory" in err
    err = _error(fm, "sample", trained, "--n", "10", "--out", tmp_path / "file" / "x.npy")
    assert f"'{tmp_path / 'file'}': File exists: it already exists" in err
    (tmp_path / "dir.npy").mkdir()
    err = _error(fm, "sample", trained, "--n", "10", "--out", tmp_path / "dir.npy")
    assert "it is a directory, where a file is expected" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_permission_denied_run_dir(fm, write_recipe, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    err = _error(fm, "train", write_recipe(), "--run-dir", locked / "run")
    assert "Permission denied" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_device_cuda_on_a_cpu_only_torch(fm, trained, tmp_path):
    err = _error(fm, "sample", trained, "--n", "10", "--out", tmp_path / "x.npy", "--device", "cuda")
    assert "sees no CUDA GPU" in err and "--device cpu" in err
    assert "is not a torch device" in _error(fm, "eval", trained, "--n", "10", "--device", "gpu0")
    assert not (tmp_path / "x.npy").exists()


# -- preflight and bounds ---------------------------------------------------------------------------------
def test_a_network_too_large_to_train_is_refused_with_numbers_before_allocation(fm, write_recipe, tmp_path):
    run = tmp_path / "run"
    err = _error(fm, "train", write_recipe(), "--set", "network.hidden=[10000000,10000000]", "--run-dir", run)
    assert "training" in err and "[network] mlp (fmcore-networks" in err
    assert "100,000,700,000,002 parameters x 4 bytes x 4" in err and "--skip-memory-check" in err
    assert "available" in err and not run.exists()
    assert "100,000,700,000,002 parameters" in _error(fm, "recipe", "check", write_recipe(), "--set",
                                                      "network.hidden=[10000000,10000000]")


def test_a_batch_of_a_billion_is_refused_by_its_activations(fm, write_recipe):
    err = _error(fm, "train", write_recipe(), "--set", "train.batch_size=1000000000")
    assert "of activations for a batch of 1,000,000,000" in err


def test_a_huge_class_label_sizing_the_embedding_is_refused(fm, write_recipe, tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32))
    labels = np.zeros(50, dtype=np.int64)
    labels[7] = 10**9
    np.save(tmp_path / "y.npy", labels)
    recipe = write_recipe(MOONS.replace('name = "moons"', 'name = "file"\npath = "x.npy"\nlabels = "y.npy"'))
    err = _error(fm, "train", recipe, "--run-dir", tmp_path / "run")
    assert "needs about" in err and "parameters" in err


def test_drawing_more_samples_than_memory_holds_is_refused(fm, trained, tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "available", lambda device: 10**6)
    out = tmp_path / "x.npy"
    err = _error(fm, "sample", trained, "--n", "20000", "--out", out, "--device", "cpu")
    assert "drawing 20,000 samples needs about" in err and "but cpu has 976.6 KiB available" in err
    assert not out.exists()
    code, _, err = fm("sample", trained, "--n", "20000", "--out", out, "--skip-memory-check")
    assert code == 0 and np.load(out).shape == (20000, 2), err
    monkeypatch.setenv(preflight.SKIP_ENV, "1")
    code, _, err = fm("sample", trained, "--n", "20000", "--out", out)
    assert code == 0, err


@pytest.mark.parametrize(("override", "expected"), [
    ("train.steps=100000000000000000000000", "[train] steps = 100000000000000000000000: expected an integer in 1 .."),
    ("train.seed=4294967296", "[train] seed = 4294967296: expected an integer in 0 .. 4,294,967,295"),
    ("train.seed=-1", "[train] seed = -1: expected an integer in 0 .."),
    ("sampler.steps=1000000000000", "[sampler] steps = 1000000000000: expected an integer in 1 .. 10,000,000"),
    ("network.hidden=[1099511627776]", "[network] hidden = [1099511627776]: expected integers up to"),
])
def test_counts_beyond_any_real_use_are_refused_by_recipe_check(fm, write_recipe, override, expected):
    assert expected in _error(fm, "recipe", "check", write_recipe(), "--set", override)


def test_a_hidden_list_of_two_million_entries_is_refused_quickly(fm, write_recipe, alarm):
    with pytest.raises(FmError, match="hidden = '<a list of 2,000,000 entries>': expected a list of at most 1024 "
                                      "integers"):
        api.choice("network", "mlp", hidden=[8] * 2_000_000)
    err = _error(fm, "recipe", "check", write_recipe(), "--set", "network.hidden=[" + ",".join(["8"] * 200_000) + "]")
    assert "[network] hidden = '<a list of 200,000 entries>': expected a list of at most 1024 integers" in err


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--seed", str(2**32), "expected a seed in 0 .. 4294967295"),
    ("--n", str(10**12), "expected a positive integer up to 1,000,000,000"),
])
def test_sample_seed_and_count_bounds(trained, tmp_path, capsys, option, value, expected):
    with pytest.raises(SystemExit) as info:
        cli_main(["sample", str(trained), "--out", str(tmp_path / "x.npy"), option, value])
    assert info.value.code == 2 and expected in capsys.readouterr().err


# -- recipes as files --------------------------------------------------------------------------------------
def test_binary_recipe_names_line_column_and_offset(fm, tmp_path):
    path = tmp_path / "model.toml"
    path.write_bytes(b"[data]\nname = \"moons\"\n\xff\xfe binary")
    assert "not a UTF-8 text file (at line 3, column 1 (byte offset 22)" in _error(fm, "recipe", "check", path)
    path.write_bytes(b"[data]\nab\x00cd")
    assert "NUL byte at line 2, column 3 (byte offset 9)" in _error(fm, "recipe", "check", path)


@pytest.mark.parametrize("text", ["a = " + "[" * 100_000, "a = " + "{b = " * 50_000])
def test_pathological_toml_nesting(fm, tmp_path, write_recipe, text, alarm):
    path = tmp_path / "deep.toml"
    path.write_text(text)
    assert "nested too deeply" in _error(fm, "recipe", "check", path)
    assert "nested too deeply" in _error(fm, "recipe", "check", write_recipe(), "--set",
                                         "network.hidden=" + text[4:])


# -- data sets validate at load -----------------------------------------------------------------------------
def _file_recipe(write_recipe, tmp_path, array, name="data.npy") -> Path:
    np.save(tmp_path / name, array)
    return write_recipe(MOONS.replace('name = "moons"', f'name = "file"\npath = "{name}"'))


@pytest.mark.parametrize(("array", "expected"), [
    (np.where(np.arange(200)[:, None] == 57, np.nan, np.ones((200, 2))),
     "NaN or inf values in 1 of 200 rows (the first is row 57)"),
    (np.where(np.arange(200)[:, None] >= 3, np.inf, np.ones((200, 2))), "in 197 of 200 rows (the first is row 3)"),
    (np.ones((10, 2)) * 1j, "complex values (complex128)"),
    (np.zeros((10, 0), np.float32), "a zero-width dimension"),
    (np.zeros((10, 2), bool), "holds bool values"),
    (np.full((10, 2), 1e300), "beyond float32's range"),
])
def test_file_data_set_refuses_bad_values_naming_file_and_row(fm, write_recipe, tmp_path, array, expected):
    err = _error(fm, "recipe", "check", _file_recipe(write_recipe, tmp_path, array))
    assert expected in err and str(tmp_path / "data.npy") in err


def test_truncated_npy_is_reported_as_truncated(fm, write_recipe, tmp_path):
    recipe = _file_recipe(write_recipe, tmp_path, np.zeros((100, 3), np.float32))
    data = (tmp_path / "data.npy").read_bytes()
    (tmp_path / "data.npy").write_bytes(data[:300])
    err = _error(fm, "recipe", "check", recipe)
    assert "is truncated: its header announces an array [100, 3] of float32" in err
    assert "Python objects" not in err


def test_symlink_loop_as_data_path(fm, write_recipe, tmp_path):
    os.symlink("loop.npy", tmp_path / "loop.npy")
    recipe = write_recipe(MOONS.replace('name = "moons"', 'name = "file"\npath = "loop.npy"'))
    assert "Too many levels of symbolic links" in _error(fm, "recipe", "check", recipe)
    os.symlink("images", tmp_path / "images")
    recipe = write_recipe(MOONS.replace('name = "moons"', 'name = "image_folder"\npath = "images"\nsize = 8'))
    assert "Too many levels of symbolic links" in _error(fm, "recipe", "check", recipe)


def _images(root: Path, classes: dict[str, int], size: int = 8) -> None:
    from PIL import Image

    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (size, size), (i * 40, 0, 0)).save(root / name / f"{i}.png")


def _image_recipe(write_recipe) -> Path:
    return write_recipe(MOONS.replace('name = "moons"', 'name = "image_folder"\npath = "images"\nsize = 8'))


def test_image_folder_empty_class_is_refused(fm, write_recipe, tmp_path):
    _images(tmp_path / "images", {"cat": 2, "dog": 0, "eel": 1})
    assert "1 class folder(s) of" in (err := _error(fm, "recipe", "check", _image_recipe(write_recipe)))
    assert "hold no images: dog" in err


def test_image_folder_named_pipe_is_refused_without_hanging(fm, write_recipe, tmp_path, alarm):
    _images(tmp_path / "images", {"cat": 2})
    os.mkfifo(tmp_path / "images" / "cat" / "pipe.png")
    err = _error(fm, "recipe", "check", _image_recipe(write_recipe))
    assert "cat/pipe.png (not a regular file (a named pipe, socket or device))" in err


def test_image_folder_decompression_bomb_is_named(fm, write_recipe, tmp_path, monkeypatch):
    from PIL import Image

    _images(tmp_path / "images", {"cat": 1}, size=64)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    err = _error(fm, "recipe", "check", _image_recipe(write_recipe))
    assert "larger than Pillow's decompression-bomb limit of 1,000 pixels" in err


# -- run directories validate their metadata ------------------------------------------------------------------
def test_edited_network_options_name_the_option_and_the_tensor(fm, trained, tmp_path):
    recipe = trained / "recipe.toml"
    recipe.write_text(recipe.read_text().replace("hidden = [\n    32,\n    32,\n]", "hidden = [\n    64,\n    32,\n]"))
    err = _error(fm, "sample", trained, "--n", "10", "--out", tmp_path / "x.npy")
    assert "ema.safetensors does not fit the recipe's [network] mlp: tensor layers.0.weight has shape [32, 66] in " \
           "the file but the network makes [64, 66]" in err
    assert "[network] hidden = [64, 32] in the recipe, but the weights were made with hidden = [32, 32]" in err
    err = _error(fm, "train", "--resume", trained, "--set", "train.steps=30")
    assert "model.safetensors does not fit" in err and "hidden = [64, 32] in the recipe" in err


@pytest.mark.parametrize(("state", "expected"), [
    ({"step": -5, "processes": 1, "skipped_steps": 0, "ema_updates": 0}, "step = -5 (expected an integer >= 0)"),
    ({"processes": 1, "skipped_steps": 0, "ema_updates": 0}, "step = null (expected an integer >= 0)"),
    ({"step": "10", "processes": 1, "skipped_steps": 0, "ema_updates": 0}, 'step = "10" (expected an integer'),
    ({"step": 10, "processes": 0, "skipped_steps": 0, "ema_updates": 1.5}, "processes = 0 (expected an integer >= 1); "
                                                                           "ema_updates = 1.5"),
    ([1, 2], "it holds list, not an object"),
])
def test_malformed_state_json_is_refused(fm, trained, state, expected):
    last = ckpt.checkpoint_dirs(trained)[-1]
    (last / "state.json").write_text(json.dumps(state))
    err = _error(fm, "train", "--resume", trained, "--set", "train.steps=30")
    assert f"{last / 'state.json'} is malformed: {expected}" in err and "damaged" in err


def test_malformed_optimizer_and_rng_metadata_are_refused(fm, trained):
    last = ckpt.checkpoint_dirs(trained)[-1]
    tensors, meta = ckpt.load_tensors(last / "optimizer.safetensors")
    save_file(tensors, str(last / "optimizer.safetensors"), {"param_groups": "[{", "scalars": "{}"})
    err = _error(fm, "train", "--resume", trained, "--set", "train.steps=30")
    assert "optimizer.safetensors: malformed optimizer metadata (JSONDecodeError" in err
    save_file(tensors, str(last / "optimizer.safetensors"), {"scalars": "{}"})
    assert "malformed optimizer metadata (KeyError" in _error(fm, "train", "--resume", trained, "--set",
                                                              "train.steps=30")
    save_file(tensors, str(last / "optimizer.safetensors"), meta)
    save_file({"gpu": torch.zeros(3, dtype=torch.uint8)}, str(last / "rng_0.safetensors"))
    err = _error(fm, "train", "--resume", trained, "--set", "train.steps=30")
    assert "rng_0.safetensors: malformed random generator state (KeyError" in err
    save_file({"cpu": torch.zeros(3, dtype=torch.uint8)}, str(last / "rng_0.safetensors"))
    assert "malformed random generator state (RuntimeError" in _error(fm, "train", "--resume", trained, "--set",
                                                                      "train.steps=30")


def test_nan_ema_weights_are_refused_not_sampled(fm, trained, tmp_path):
    weights, meta = ckpt.load_tensors(trained / "ema.safetensors")
    weights["layers.2.bias"][0] = float("nan")
    save_file(weights, str(trained / "ema.safetensors"), meta)
    out = tmp_path / "x.npy"
    err = _error(fm, "sample", trained, "--n", "10", "--out", out)
    assert "ema.safetensors holds non-finite (NaN or inf) values in 1 tensor(s), first layers.2.bias" in err
    assert not out.exists()
    code, _, err = fm("sample", trained, "--n", "10", "--out", out, "--no-ema")
    assert code == 0 and np.isfinite(np.load(out)).all()


def test_non_finite_samples_are_an_error_with_count_and_first_index(fm, trained, tmp_path, monkeypatch):
    import fmcore.run.sampling as sampling

    real = sampling.BatchNoise

    class Poisoned(real):  # the noise of sample 70 (second block) is inf: its sample is not finite
        def __init__(self, seed, start, *args, **kwargs):
            super().__init__(seed, start, *args, **kwargs)
            self.start = start

        def randn(self):
            x = super().randn()
            if self.start <= 70 < self.start + x.shape[0]:
                x[70 - self.start] = float("inf")
            return x

    monkeypatch.setattr(sampling, "BatchNoise", Poisoned)
    out = tmp_path / "x.npy"
    err = _error(fm, "sample", trained, "--n", "100", "--out", out)
    assert "1 of 100 samples hold NaN or inf values (the first is sample 70); nothing was written" in err
    assert not out.exists()


# -- one writer ----------------------------------------------------------------------------------------------
def test_a_second_writer_is_refused_naming_the_holder(fm, trained):
    with RunLock(trained):
        err = _error(fm, "train", "--resume", trained, "--set", "train.steps=30")
        assert f"is being written by another `fm train` (pid {os.getpid()})" in err
        code, _, err = fm("sample", trained, "--n", "10", "--out", trained / "x.npy")  # readers never lock
        assert code == 0, err
    code, out, err = fm("train", "--resume", trained, "--set", "train.steps=30")
    assert code == 0, err


# -- checkpoints: cadence, resume from step 0, metrics once -----------------------------------------------------
def test_wall_time_cadence_and_a_final_checkpoint(fm, write_recipe, tmp_path):
    recipe = write_recipe(MOONS.replace(TRAIN, TRAIN + "keep_checkpoints = 100\ncheckpoint_minutes = 1e-12\n"))
    code, _, err = fm("train", recipe, "--run-dir", tmp_path / "a")
    assert code == 0, err
    assert len(ckpt.checkpoint_dirs(tmp_path / "a")) == 20  # every step is past the deadline
    code, _, err = fm("train", write_recipe(), "--run-dir", tmp_path / "b")  # default: 10 minutes, and the end
    assert code == 0, err
    assert [p.name for p in ckpt.checkpoint_dirs(tmp_path / "b")] == ["step_00000020"]


def test_resume_without_a_checkpoint_starts_from_step_0_and_metrics_hold_each_step_once(fm, write_recipe, tmp_path):
    code, _, err = fm("train", write_recipe(), "--run-dir", tmp_path / "ref")
    assert code == 0, err
    run = tmp_path / "run"
    code, _, err = fm("train", write_recipe(), "--run-dir", run)
    assert code == 0, err
    for path in ckpt.checkpoint_dirs(run):  # as if killed before the first checkpoint, after logging a row
        import shutil

        shutil.rmtree(path)
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text() + '{"step": 30, "lo')
    err = _error(fm, "train", write_recipe(), "--run-dir", run)
    assert f"already holds a run; continue it with `fm train --resume {run}`" in err
    code, out, err = fm("train", "--resume", run)
    assert code == 0, err
    assert "has no checkpoint yet: starting again from step 0" in out
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [10, 20]
    assert (run / "model.safetensors").read_bytes() == (tmp_path / "ref" / "model.safetensors").read_bytes()


def test_interrupt_flag_checkpoints_and_exits_143(fm, write_recipe, tmp_path, monkeypatch):
    """In-process: a SIGTERM delivered during step 7 stops after it with a checkpoint of step 7."""
    from fmcore.run import training

    real = training.Trainer.train_step

    def step_and_signal(self, log_now=False):
        out = real(self, log_now)
        if self.step == 7:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(training.Trainer, "train_step", step_and_signal)
    run = tmp_path / "run"
    err = _error(fm, "train", write_recipe(), "--run-dir", run, code=143)
    assert f"SIGTERM received: training stopped after step 7 of 20; the checkpoint {run}/checkpoints/step_00000007 " \
           f"holds it. Continue exactly where it stopped with: fm train --resume {run}" in err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or sys.platform != "linux"


def test_sigterm_while_plugins_load_stops_the_command_instead_of_breaking_a_plugin(capsys):
    from fmcore import hookimpl
    from fmcore.core.errors import Terminated
    from fmcore.plugins.loading import PluginHost

    class Hook:  # the signal arrives while this plugin's hook runs
        @staticmethod
        @hookimpl
        def register_paths(register):
            raise Terminated

    host = PluginHost(entry_points=False)
    host.register(Hook, "Hook", package="pkg-hook")
    assert cli_main(["plugins"], host=host) == 143
    assert capsys.readouterr().err == "error: terminated (SIGTERM); nothing was lost: files are written atomically\n"
    assert host.records["Hook"].error is None
