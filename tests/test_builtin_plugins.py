"""The built-in plugin packages: what `fm plugins` lists, and what removing one package does."""

from __future__ import annotations

import importlib
import importlib.metadata
import json

import pytest

from fmcore.core.errors import FmError
from fmcore.plugins.loading import PluginHost
from fmcore.plugins.registry import BUILTIN_PACKAGES
from fmcore.recipe.build import build
from fmcore.recipe.recipe import load_recipe

PACKAGES = ["fmcore-datasets", "fmcore-paths", "fmcore-objectives", "fmcore-networks", "fmcore-samplers"]


def _host_without(missing: str | None) -> PluginHost:
    """A host with the built-in packages registered as if installed, except ``missing``."""
    host = PluginHost(entry_points=False)
    for package in PACKAGES:
        if package == missing:
            continue
        dist = importlib.metadata.distribution(package)
        (ep,) = [ep for ep in dist.entry_points if ep.group == "fmcore"]
        host.register(importlib.import_module(ep.value), ep.name, package, dist.version)
    return host


def test_fm_plugins_lists_every_builtin_component_with_its_package(fm):
    code, out, _ = fm("plugins", "--json")
    assert code == 0
    listed = {(kind, c["name"]): c["package"] for kind, comps in json.loads(out)["components"].items()
              for c in comps}
    for kind, names in BUILTIN_PACKAGES.items():
        for name, package in names.items():
            assert listed[(kind, name)] == package
    code, out, _ = fm("plugins")
    assert "condot           fmcore-paths 0.2.0" in out


@pytest.mark.parametrize("missing", PACKAGES)
def test_removing_a_package_removes_exactly_its_components(missing):
    full = _host_without(None).registry()
    partial = _host_without(missing).registry()
    for kind in BUILTIN_PACKAGES:
        expected = {c.name for c in full.components(kind) if c.package != missing}
        assert set(partial.names(kind)) == expected


def test_recipe_naming_a_component_of_a_missing_package_names_the_package(write_recipe):
    registry = _host_without("fmcore-paths").registry()
    with pytest.raises(FmError) as info:
        load_recipe(write_recipe(), registry)
    msg = str(info.value)
    assert "[path] name: unknown path 'condot'; installed: none" in msg
    assert "comes with the package 'fmcore-paths', which is not installed (pip install fmcore-paths" in msg


def test_builtin_catalog_matches_installed_packages():
    """BUILTIN_PACKAGES (used for the 'install X' hint) must not drift from what the packages register."""
    registry = _host_without(None).registry()
    for kind in BUILTIN_PACKAGES:
        registered = {c.name: c.package for c in registry.components(kind) if c.package in PACKAGES}
        assert registered == BUILTIN_PACKAGES[kind]


def test_recipe_builds_with_fresh_registry(write_recipe):
    registry = _host_without(None).registry()
    c = build(load_recipe(write_recipe(), registry), registry)
    assert c.dataset.info.shape == (2,)
