"""The hooks a plugin implements: one per component kind, each given a ``register(name, cls)`` callback.

A plugin module (named by an entry point in the ``fmcore`` group) looks like::

    from fmcore import hookimpl
    @hookimpl
    def register_paths(register):
        register("cosine", CosinePath)
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "fmcore"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[str, type], None]

#: hook name -> component kind
HOOK_KINDS = {
    "register_datasets": "dataset",
    "register_paths": "path",
    "register_objectives": "objective",
    "register_networks": "network",
    "register_samplers": "sampler",
    "register_features": "feature",
}


@hookspec
def register_datasets(register: Register) -> None:
    """Register data sets: ``register(name, DatasetSubclass)``."""


@hookspec
def register_paths(register: Register) -> None:
    """Register probability paths: ``register(name, ProbabilityPathSubclass)``."""


@hookspec
def register_objectives(register: Register) -> None:
    """Register objectives: ``register(name, ObjectiveSubclass)``."""


@hookspec
def register_networks(register: Register) -> None:
    """Register networks: ``register(name, NetworkSubclass)``."""


@hookspec
def register_samplers(register: Register) -> None:
    """Register samplers: ``register(name, SamplerSubclass)``."""


@hookspec
def register_features(register: Register) -> None:
    """Register feature networks for ``fm eval`` on images: ``register(name, FeatureExtractorSubclass)``."""
