"""Run the plugin tutorials (docs/tutorial-*.md) the way a reader would.

Block format, read by :func:`steps`:

* a fenced block whose info string has ``file=RELATIVE/PATH`` (e.g. ```` ```python file=pkg/mod.py ````) is a
  file the reader writes, relative to the tutorial's (initially empty) working folder;
* a ```` ```console ```` block holds commands, each on a line starting with ``$ ``; the other lines are
  example output and are not checked;
* any other block is illustration only.

The fast variant runs in-process: ``pip install [-e] ./DIR`` becomes a fake install (a dist-info made from
``DIR/pyproject.toml`` on ``sys.path``), ``fm ...`` calls :func:`fmcore.cli.main` (``fm train`` gets
``--set train.steps=5`` appended), and ``pytest ...`` calls :func:`pytest.main`. The slow variant makes a
fresh virtual environment with fmcore and its built-in plugins and runs every command in bash, unchanged.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import torch

import fmcore.plugins.loading
from fmcore.cli import main
from fmcore.testing import fake_install

ROOT = Path(__file__).parents[1]
TUTORIALS = {"path": ROOT / "docs" / "tutorial-path-plugin.md", "sampler": ROOT / "docs" / "tutorial-sampler-plugin.md"}
#: component kind and name each tutorial adds
ADDS = {"path": ("path", "poly"), "sampler": ("sampler", "rk3")}

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)


def steps(markdown: str) -> list[tuple[str, str, str]]:
    """``("file", path, text)`` and ``("run", command, "")`` in document order."""
    out = []
    for match in FENCE.finditer(markdown):
        info, body = match.group(1).split(), match.group(2)
        files = [word.removeprefix("file=") for word in info if word.startswith("file=")]
        if files:
            out.append(("file", files[0], body))
        elif info[:1] == ["console"]:
            out.extend(("run", line[2:].strip(), "") for line in body.splitlines() if line.startswith("$ "))
    return out


def test_block_format_parser():
    doc = ("intro\n```python file=a/b.py\nx = 1\n```\n```console\n$ fm plugins\noutput\n$ pytest -q t\n```\n"
           "```toml\n[not] = 'a file'\n```\n")
    assert steps(doc) == [("file", "a/b.py", "x = 1\n"), ("run", "fm plugins", ""), ("run", "pytest -q t", "")]


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_has_files_and_commands(name):
    found = steps(TUTORIALS[name].read_text())
    commands = [s[1] for s in found if s[0] == "run"]
    assert any(c.startswith("pip install") for c in commands)
    assert any(c.startswith("fm train") for c in commands)
    assert any(c.startswith("pytest") for c in commands)
    assert any(s[1].endswith("pyproject.toml") for s in found if s[0] == "file")


def _write(workdir: Path, rel: str, text: str) -> None:
    target = workdir / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_fast(name, tmp_path, monkeypatch, capsys):
    """Every command of the tutorial, in-process, with pip replaced by a fake install."""
    work, site = tmp_path / "work", tmp_path / "site"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(fmcore.plugins.loading, "_default_host", None)
    monkeypatch.delenv(fmcore.plugins.loading.STRICT_ENV, raising=False)
    modules_before = set(sys.modules)
    outputs = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread beats several competing on a shared machine
    try:
        for kind, what, text in steps(TUTORIALS[name].read_text()):
            if kind == "file":
                _write(work, what, text)
                continue
            argv = shlex.split(what)
            start = time.perf_counter()
            if argv[:2] == ["pip", "install"]:
                project = work / argv[-1]
                meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
                fake_install(site, meta["name"], meta["entry-points"]["fmcore"], version=meta["version"])
                monkeypatch.syspath_prepend(str(project))
                importlib.invalidate_caches()
                monkeypatch.setattr(fmcore.plugins.loading, "_default_host", None)
                continue
            if argv[0] == "fm":
                args = argv[1:] + (["--set", "train.steps=5", "--set", "train.log_every=5"] if argv[1] == "train"
                                   else [])
                code = main(args)
            elif argv[0] == "pytest":
                code = pytest.main([*argv[1:], "-p", "no:cacheprovider", "--import-mode=importlib"])
            else:
                pytest.fail(f"the fast tutorial runner cannot run {what!r}; use pip, fm or pytest commands")
            out, err = capsys.readouterr()
            sys.__stderr__.write(f"{time.perf_counter() - start:6.1f}s {what}\n")
            assert code == 0, f"{what!r} exited with {code}:\n{out}\n{err}"
            outputs[what] = out
    finally:
        torch.set_num_threads(threads)
        for module in set(sys.modules) - modules_before:
            if module.startswith("fmcore_") and module.split(".")[0] not in {m.split(".")[0] for m in modules_before}:
                del sys.modules[module]
    kind, component = ADDS[name]
    listing = next(out for cmd, out in outputs.items() if cmd.startswith("fm plugins"))
    assert re.search(rf"^  {component} +fmcore-{component}", listing, re.M), listing
    assert any("trained 5 steps" in out for cmd, out in outputs.items() if cmd.startswith("fm train"))


def _fresh_venv(path: Path) -> dict[str, str]:
    """A virtual environment with torch, fmcore and the built-in plugins (the tutorials' starting point)."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    packages = ["torch==2.13.0", "pytest", "-e", str(ROOT)]
    for plugin in sorted((ROOT / "plugins").iterdir()):
        packages += ["-e", str(plugin)]
    subprocess.run([str(path / "bin" / "pip"), "install", "-q", *packages], check=True)
    hidden = ("PYTHONPATH", "VIRTUAL_ENV", fmcore.plugins.loading.STRICT_ENV)
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env["PATH"] = f"{path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(path)
    return env


@pytest.mark.slow
@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_in_a_fresh_virtual_environment(name, tmp_path):
    """As a new user: a fresh venv, then every command of the tutorial, unchanged, in bash."""
    env = _fresh_venv(tmp_path / "venv")
    work = tmp_path / "work"
    work.mkdir()
    outputs = {}
    for kind, what, text in steps(TUTORIALS[name].read_text()):
        if kind == "file":
            _write(work, what, text)
            continue
        proc = subprocess.run(["bash", "-c", what], cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{what!r} exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        outputs[what] = proc.stdout
    _, component = ADDS[name]
    listing = next(out for cmd, out in outputs.items() if cmd.startswith("fm plugins"))
    assert re.search(rf"^  {component} +fmcore-{component}", listing, re.M), listing
    assert any("trained" in out for cmd, out in outputs.items() if cmd.startswith("fm train"))
