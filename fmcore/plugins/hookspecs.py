"""The hooks a plugin implements: one per component kind (:data:`fmcore.plugins.kinds.KINDS`), each given a
``register(name, cls)`` callback. A plugin module (named by an entry point in the ``fmcore`` group)::

    from fmcore import hookimpl

    @hookimpl
    def register_paths(register):
        register("cosine", CosinePath)

Hooks: ``register_datasets``, ``register_paths``, ``register_objectives``, ``register_networks``,
``register_samplers``, ``register_grids``, ``register_time_densities``, ``register_diffusions``,
``register_features``, ``register_couplings``.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from fmcore.plugins.kinds import HOOK_KINDS, KIND_LIST

PROJECT = "fmcore"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[str, type], None]


def _spec(hook: str, kind: str, base: type) -> Callable[[Register], None]:
    def spec(register: Register) -> None:
        pass

    spec.__name__ = spec.__qualname__ = hook
    spec.__doc__ = f"Register {kind} components: ``register(name, {base.__name__}Subclass)``."
    return hookspec(spec)


class Specs:
    """The hookspecs, one per kind, generated from the kinds table."""


for _kind in KIND_LIST:
    setattr(Specs, _kind.hook, _spec(_kind.hook, _kind.name, _kind.base))

__all__ = ["HOOK_KINDS", "PROJECT", "Register", "Specs", "hookimpl", "hookspec"]
