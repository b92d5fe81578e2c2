"""Plugin loading: broken plugins are reported and isolated, strict mode, duplicates, malformed hooks.

In-process tests use a fresh ``PluginHost(entry_points=False)``; "installed" plugins are fake installs
(a ``*.dist-info`` folder with ``entry_points.txt`` in a temporary site directory on ``sys.path``).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import pytest
import torch

from fmcore import GaussianPath, hookimpl
from fmcore.core.errors import FmError
from fmcore.plugins.loading import STRICT_ENV, PluginHost
from fmcore.plugins.registry import DuplicateComponentError
from fmcore.testing import fake_install


@attrs.define
class _NoOptions:
    pass


class GoodPath(GaussianPath):
    """A test path: alpha_t = t, beta_t = 1 - t."""

    Options = _NoOptions

    def __init__(self, options=None):
        self.options = options

    def coefficients(self, t):
        return t, 1 - t, torch.ones_like(t), -torch.ones_like(t)


class Good:
    @staticmethod
    @hookimpl
    def register_paths(register):
        register("good", GoodPath)


class RaisesHalfway:
    """Registers a data set and a path, then fails: nothing of it may stay registered."""

    @staticmethod
    @hookimpl
    def register_paths(register):
        register("half", GoodPath)
        raise RuntimeError("boom after one registration")


class NotAComponent:
    @staticmethod
    @hookimpl
    def register_paths(register):
        register("plain", dict)


class Misnamed:
    @staticmethod
    @hookimpl
    def register_path(register):
        register("typo", GoodPath)


class ExtraArgument:
    @staticmethod
    @hookimpl
    def register_paths(register, extra):
        register("extra", GoodPath)


class NoArgument:
    @staticmethod
    @hookimpl
    def register_paths():
        pass


class Unmarked:
    @staticmethod
    def register_paths(register):
        register("unmarked", GoodPath)


class Empty:
    pass


class Duplicate:
    @staticmethod
    @hookimpl
    def register_paths(register):
        register("good", GoodPath)


def _host(*plugins) -> PluginHost:
    host = PluginHost(entry_points=False)
    for i, plugin in enumerate(plugins):
        host.register(plugin, plugin.__name__, package=f"pkg-{plugin.__name__.lower()}", version=f"0.{i}")
    return host


def test_good_plugin_registers_with_its_package():
    host = _host(Good)
    comp = host.registry().get("path", "good")
    assert (comp.cls, comp.package, comp.version) == (GoodPath, "pkg-good", "0.0")
    assert host.records["Good"].components == [("path", "good")]
    assert host.broken == []


def test_hook_raising_halfway_is_rolled_back_and_reported():
    host = _host(Good, RaisesHalfway)
    registry = host.registry()
    assert registry.names("path") == ["good"], "the component registered before the exception must be dropped"
    record = host.records["RaisesHalfway"]
    assert record.error == "hook register_paths raised: RuntimeError: boom after one registration"
    assert record.components == []
    assert [r.name for r in host.broken] == ["RaisesHalfway"]


def test_registering_a_non_component_marks_only_that_plugin_broken():
    host = _host(NotAComponent, Good)
    assert host.registry().names("path") == ["good"]
    error = host.records["NotAComponent"].error
    assert error.startswith("hook register_paths raised: FmError: pkg-notacomponent registers path 'plain' as "
                            "<class 'dict'>, which is not a subclass of fmcore.ProbabilityPath")


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        (Misnamed, "hook implementation 'register_path' matches no fmcore hook (did you mean 'register_paths'?); "
                   "hooks: register_datasets, register_paths"),
        # after our prefix the message is pluggy's own, worded differently across its versions
        (ExtraArgument, ("malformed hook implementation: ", "ExtraArgument", "register_paths", "extra")),
        (NoArgument, "hook implementation register_paths() must take exactly one argument, `register`"),
        (Unmarked, "register_paths is not marked with @fmcore.hookimpl, so fmcore cannot call it"),
        (Empty, "it has no fmcore hook implementation (expected a function such as "
                "`@fmcore.hookimpl def register_paths(register): ...`)"),
    ],
)
def test_malformed_hook_implementations_are_reported_not_ignored(plugin, message):
    host = _host(plugin, Good)
    assert host.registry().names("path") == ["good"]
    record = host.records[plugin.__name__]
    assert all(part in record.error for part in ((message,) if isinstance(message, str) else message)), record.error
    assert host.pm.get_plugin(plugin.__name__) is None, "a malformed plugin must not stay registered"


class Other:
    @staticmethod
    @hookimpl
    def register_paths(register):
        register("other", GoodPath)


def test_duplicate_name_is_refused_only_where_used_naming_both_packages():
    host = _host(Good, Duplicate, Other)
    registry = host.registry()
    assert registry.get("path", "other").package == "pkg-other"  # the rest keeps working
    with pytest.raises(DuplicateComponentError) as info:
        registry.get("path", "good")
    where = f"{GoodPath.__module__}.GoodPath"
    assert str(info.value) == (f"path 'good' is registered twice: by pkg-duplicate ({where}) and by pkg-good "
                               f"({where}); uninstall one of the two packages")
    assert list(registry.clashes()) == [("path", "good")]


def test_registering_two_plugins_under_one_name_is_refused():
    host = _host(Good)
    with pytest.raises(FmError, match="a plugin named 'Good' is already registered"):
        host.register(Duplicate, "Good")


@pytest.mark.parametrize(("value", "strict"), [("1", True), ("0", False), ("", False)])
def test_strict_mode_turns_breakage_into_an_error(monkeypatch, value, strict):
    monkeypatch.setenv(STRICT_ENV, value)
    host = _host(Good, RaisesHalfway)
    if strict:
        with pytest.raises(FmError, match=f"{STRICT_ENV} is set and some plugins are broken or clash: RaisesHalfway "
                                          r"\(pkg-raiseshalfway\): hook register_paths raised"):
            host.registry()
    else:
        assert host.registry().names("path") == ["good"]


def test_registry_is_rebuilt_without_duplicating_components():
    host = _host(Good)
    host.registry()
    host.register(Misnamed)
    host.registry()
    assert host.records["Good"].components == [("path", "good")]


# -- fake installs -------------------------------------------------------------------------------------
PATH_MODULE = '''
import attrs, torch
from fmcore import GaussianPath, hookimpl

@attrs.define
class Options:
    pass

class {cls}(GaussianPath):
    """{doc}"""
    Options = Options

    def __init__(self, options):
        self.options = options

    def coefficients(self, t):
        return t, 1 - t, torch.ones_like(t), -torch.ones_like(t)

@hookimpl
def register_paths(register):
    register({name!r}, {cls})
'''

BROKEN_MODULE = "import fmcore\nraise ImportError('brokenplug needs a library that is not installed')\n"


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A fake site directory on sys.path and cleanup of imported modules (the `fm` fixture builds a fresh plugin
    host for every call, so it sees what is installed here)."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    before = set(sys.modules)

    def install(distribution: str, entry_points: dict[str, str], files: dict[str, str]) -> None:
        fake_install(site, distribution, entry_points, files)
        importlib.invalidate_caches()

    install.path = site
    yield install
    for name in set(sys.modules) - before:
        if name.startswith(("brokenplug", "extrapath", "dupplug", "samename")):
            del sys.modules[name]


def test_import_failure_is_recorded_and_others_keep_working(site):
    site("brokenplug", {"broken": "brokenplug_mod"}, {"brokenplug_mod.py": BROKEN_MODULE})
    site("extrapath", {"extra": "extrapath_mod"},
         {"extrapath_mod.py": PATH_MODULE.format(cls="Extra", name="extra", doc="An extra path.")})
    host = PluginHost()
    registry = host.registry()
    record = host.records["broken"]
    assert (record.package, record.version) == ("brokenplug", "0.1")
    assert record.error == ("import of 'brokenplug_mod' failed: ImportError: brokenplug needs a library that is "
                            "not installed")
    assert registry.get("path", "extra").package == "extrapath"
    assert "condot" in registry.names("path")


def test_same_entry_point_name_in_two_distributions_loads_both(site):
    site("samename", {"paths": "samename_mod"},
         {"samename_mod.py": PATH_MODULE.format(cls="Same", name="same", doc="Same entry point name.")})
    host = PluginHost()
    registry = host.registry()
    assert registry.get("path", "same").package == "samename"
    assert registry.get("path", "condot").package == "fmcore-paths"
    assert {r.package for r in host.records.values() if r.name.endswith("paths")} == {"samename", "fmcore-paths"}


def test_cli_with_a_broken_plugin(site, fm, write_recipe, tmp_path, monkeypatch):
    site("brokenplug", {"broken": "brokenplug_mod"}, {"brokenplug_mod.py": BROKEN_MODULE})
    code, out, err = fm("plugins")
    assert code == 0, err
    assert "broken plugins:\n  broken (brokenplug 0.1): import of 'brokenplug_mod' failed: ImportError:" in out
    assert "condot" in out

    recipe = write_recipe()
    code, out, err = fm("train", recipe, "--set", "train.steps=3", "--set", "train.log_every=1",
                        "--run-dir", tmp_path / "run")
    assert code == 0, err
    assert "trained 3 steps" in out
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: broken fmcore plugins skipped: broken (brokenplug); run `fm plugins` for details"]

    monkeypatch.setenv(STRICT_ENV, "1")
    code, out, err = fm("recipe", "check", recipe)
    assert code == 2
    assert err.startswith(f"error: {STRICT_ENV} is set and some plugins are broken or clash: broken (brokenplug): "
                          "import of "
                          "'brokenplug_mod' failed: ImportError: brokenplug needs")
    assert "Traceback" not in err


def test_cli_plugin_clash_is_local(site, fm, write_recipe, tmp_path, monkeypatch):
    """A plugin re-registering 'condot': fm plugins lists both and the clash; a recipe using another path runs
    with a warning; one using 'condot' is refused naming both packages; strict mode refuses everything."""
    site("dupplug", {"dup": "dupplug_mod"},
         {"dupplug_mod.py": PATH_MODULE.format(cls="MyCondOT", name="condot", doc="Another condot.")})
    clash = ("path 'condot' is registered twice: by dupplug (dupplug_mod.MyCondOT) and by fmcore-paths "
             "(fmcore_paths.condot.CondOTPath); uninstall one of the two packages")
    code, out, err = fm("plugins")
    assert code == 0, err
    assert "  condot           dupplug" in out and "  condot           fmcore-paths" in out
    assert f"clashes (a name registered by two packages; recipes using it are refused):\n  {clash}" in out

    recipe = write_recipe()
    code, out, err = fm("recipe", "check", recipe)
    assert code == 2 and "Traceback" not in err
    assert err == f"warning: {clash}; recipes that use path 'condot' are refused until then, everything else " \
        f"works\nerror: {recipe}: [path] name: {clash}\n"

    code, out, err = fm("train", recipe, "--set", "path.name=vp", "--set", "objective.name=dsm",
                        "--set", "train.steps=2", "--run-dir", tmp_path / "run")
    assert code == 0, err
    assert err.count("warning: path 'condot' is registered twice") == 1

    monkeypatch.setenv(STRICT_ENV, "1")
    code, out, err = fm("recipe", "check", recipe, "--set", "path.name=vp", "--set", "objective.name=dsm")
    assert code == 2 and f"{STRICT_ENV} is set and some plugins are broken or clash: {clash}" in err


@pytest.mark.slow
def test_fm_subprocess_sees_a_plugin_installed_on_pythonpath(tmp_path):
    """End to end, without pip: a dist-info on PYTHONPATH is an installed plugin for a fresh `fm` process."""
    site = tmp_path / "site"
    fake_install(site, "brokenplug", {"broken": "brokenplug_mod"}, {"brokenplug_mod.py": BROKEN_MODULE})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).parents[1])])}
    env.pop(STRICT_ENV, None)
    code = textwrap.dedent(f"""
        import sys
        from fmcore.cli import main
        sys.argv = ["fm", "plugins"]
        code = main(["plugins"])
        import os
        os.environ[{STRICT_ENV!r}] = "1"
        from fmcore.plugins.loading import PluginHost
        sys.exit(code * 10 + main(["plugins"], host=PluginHost()))
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr  # first `fm plugins` exits 0, the strict one 2
    assert "broken (brokenplug 0.1): import of 'brokenplug_mod' failed" in proc.stdout
    assert f"error: {STRICT_ENV} is set" in proc.stderr
