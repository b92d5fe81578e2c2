"""Every bad-input case of the foundation issue: one-paragraph message, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import MOONS


def _check_error(fm, *args) -> str:
    code, out, err = fm(*args)
    assert code == 2, (code, out, err)
    assert err.startswith("error: ")
    assert "Traceback" not in err
    assert err.count("\n") == 1, "the message is one paragraph"
    return err


def test_toml_syntax_error_names_line_and_column(fm, write_recipe):
    path = write_recipe(MOONS.replace('name = "mlp"', 'name = "mlp'))
    err = _check_error(fm, "recipe", "check", path)
    assert str(path) in err and "invalid TOML" in err
    assert "(at line 12, column 12)" in err


def test_unknown_component_lists_installed_and_suggests(fm, write_recipe):
    err = _check_error(fm, "recipe", "check", write_recipe(MOONS.replace('"condot"', '"condott"')))
    assert "[path] name: unknown path 'condott' (did you mean 'condot'?)" in err
    assert "installed: condot" in err


def test_unknown_option_names_table_key_and_suggests(fm, write_recipe):
    err = _check_error(fm, "recipe", "check", write_recipe(MOONS.replace("hidden =", "hiden =")))
    assert "[network]: unknown option 'hiden' (did you mean 'hidden'?)" in err
    assert "options: activation, class_dim, hidden, time_dim" in err


def test_unknown_option_and_bad_value_in_one_table_are_both_reported(fm, write_recipe):
    recipe = MOONS.replace('name = "condot"', 'name = "condot"\nsigma_min = -0.1\nsigmamax = 2')
    err = _check_error(fm, "recipe", "check", write_recipe(recipe))
    assert "[path]: unknown option 'sigmamax'" in err
    assert "[path] sigma_min = -0.1: expected a number in [0.0, 1.0)" in err


def test_unknown_table_suggests(fm, write_recipe):
    err = _check_error(fm, "recipe", "check", write_recipe(MOONS + "\n[trian]\nsteps = 3\n"))
    assert "unknown table [trian] (did you mean 'train'?)" in err


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("steps = 20", "steps = -5", "[train] steps = -5: expected an integer in 1 .. 1,000,000,000,000"),
        ("steps = 20", "steps = 2.5", "[train] steps = 2.5: expected an integer, got float 2.5"),
        ("batch_size = 64", "batch_size = 64\nlr = 0", "[train] lr = 0.0: expected a finite number > 0"),
        ("batch_size = 64", "batch_size = 64\nlr = -1e-3", "[train] lr = -0.001: expected a finite number > 0"),
        ('name = "condot"', 'name = "condot"\nsigma_min = 1.0',
         "[path] sigma_min = 1.0: expected a number in [0.0, 1.0)"),
        ('name = "condot"', 'name = "condot"\nsigma_min = -0.1',
         "[path] sigma_min = -0.1: expected a number in [0.0, 1.0)"),
        ("hidden = [32, 32]", 'hidden = [32, "wide"]', "[network] hidden[1] = [32, 'wide']: expected an integer"),
        ("hidden = [32, 32]", "hidden = []", "[network] hidden = []: expected a non-empty list of integers > 0"),
        ('name = "euler"', 'name = "euler"\ngrid = "unifrom"', "did you mean 'uniform'?"),
        ("batch_size = 64", "batch_size = true", "[train] batch_size = True: expected an integer, got a boolean"),
    ],
)
def test_wrong_type_or_range_names_key_value_and_expectation(fm, write_recipe, old, new, expected):
    err = _check_error(fm, "recipe", "check", write_recipe(MOONS.replace(old, new)))
    assert expected in err


def test_missing_recipe_file(fm, tmp_path):
    err = _check_error(fm, "recipe", "check", tmp_path / "nope.toml")
    assert f"recipe file '{tmp_path / 'nope.toml'}' not found" in err


def test_missing_table_and_missing_name(fm, write_recipe):
    err = _check_error(fm, "recipe", "check", write_recipe(MOONS.replace('[path]\nname = "condot"\n', "")))
    assert "missing table [path]" in err and "condot" in err
    err = _check_error(fm, "recipe", "check", write_recipe(MOONS.replace('name = "condot"', 'sigma_min = 0.1')))
    assert '[path] needs name = "..."' in err


def test_run_dir_that_is_not_a_run(fm, tmp_path):
    err = _check_error(fm, "sample", tmp_path, "--out", tmp_path / "x.npy")
    assert "is not an fmcore run directory" in err
    err = _check_error(fm, "eval", tmp_path / "missing")
    assert "not found" in err


def test_bad_override_syntax_and_table(fm, write_recipe):
    path = write_recipe()
    err = _check_error(fm, "recipe", "check", path, "--set", "trainsteps=3")
    assert "expected TABLE.KEY=VALUE" in err
    err = _check_error(fm, "recipe", "check", path, "--set", "netwrk.hidden=[8]")
    assert "unknown table 'netwrk' (did you mean 'network'?)" in err


def test_overrides_parse_toml_values(fm, write_recipe):
    code, out, _ = fm("recipe", "show", write_recipe(), "--set", "train.steps=200", "--set",
                      "network.hidden=[128,128]", "--set", "data.name=8gaussians")
    assert code == 0
    assert "steps = 200" in out and "hidden = [\n    128,\n    128,\n]" in out and 'name = "8gaussians"' in out


def test_training_into_existing_run_refused_and_untouched(fm, write_recipe, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "precious.txt").write_text("keep me")
    err = _check_error(fm, "train", write_recipe(), "--run-dir", run)
    assert "already exists and is not empty" in err and "not an fmcore run" in err
    assert (run / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in run.iterdir()) == ["precious.txt"]  # no lock file left in a foreign folder


@pytest.mark.e2e
def test_command_line_entry_point_exits_2_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fmcore", "recipe", "check", str(tmp_path / "none.toml")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: recipe file") and "Traceback" not in proc.stderr
