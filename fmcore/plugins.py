"""Loading plugins: entry points in the ``fmcore`` group, registered on a pluggy manager.

Each entry point is loaded on its own: a plugin whose import fails, whose hook implementation is
malformed or misnamed, or whose hook raises is recorded as broken (``fm plugins`` shows why) and every
other plugin keeps working. ``FMCORE_STRICT_PLUGINS=1`` makes any breakage an error.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from types import ModuleType

import attrs
import pluggy

from fmcore import hookspecs
from fmcore.errors import FmError, did_you_mean
from fmcore.registry import Registry

ENTRY_POINT_GROUP = "fmcore"
STRICT_ENV = "FMCORE_STRICT_PLUGINS"


@attrs.define
class PluginRecord:
    """One plugin: its name, the distribution it came from, and what it registered or why it broke."""

    name: str
    package: str
    version: str
    components: list[tuple[str, str]] = attrs.field(factory=list)
    error: str | None = None


class PluginHost:
    """A pluggy manager for fmcore hooks, plus a record of every plugin it tried to load."""

    def __init__(self, entry_points: bool = True):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self._registry: Registry | None = None
        if entry_points:
            self.load_entry_points()

    def load_entry_points(self) -> None:
        """Import and register every entry point of the ``fmcore`` group, recording failures."""
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist
            package = dist.metadata["Name"] if dist is not None else "<unknown>"
            version = dist.version if dist is not None else ""
            if ep.name in self.records:
                continue
            try:
                plugin = ep.load()
            except BaseException as exc:  # noqa: BLE001 - a plugin may fail in any way, even SystemExit
                self.records[ep.name] = PluginRecord(ep.name, package, version, error=_describe(exc, "import failed"))
                continue
            self.register(plugin, ep.name, package, version)

    def register(self, plugin: object, name: str | None = None, package: str = "<in-process>",
                 version: str = "") -> PluginRecord:
        """Register a plugin object (module, class or instance with hook implementations) in-process."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        record = PluginRecord(name, package, version)
        self.records[name] = record
        self._registry = None
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            record.error = f"malformed hook implementation: {exc}"
            return record
        except ValueError as exc:
            record.error = str(exc)
            return record
        unknown = [
            hook for hook, caller in vars(self.pm.hook).items()
            if caller.spec is None and any(impl.plugin is plugin for impl in caller.get_hookimpls())
        ]
        if unknown:
            self.pm.unregister(plugin)
            record.error = "; ".join(
                f"hook implementation {hook!r} matches no fmcore hook{did_you_mean(hook, hookspecs.HOOK_KINDS)}"
                for hook in unknown
            )
        return record

    def unregister(self, name: str) -> None:
        """Remove a plugin registered under ``name``."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self.records.pop(name, None)
        self._registry = None

    @property
    def broken(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.error]

    def registry(self) -> Registry:
        """Call every plugin's hooks (each on its own, so one failure stays local) and collect components."""
        if self._registry is not None:
            return self._registry
        registry = Registry()
        for hook, kind in hookspecs.HOOK_KINDS.items():
            for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
                record = self.records[impl.plugin_name]
                if record.error:
                    continue

                def register(name: str, cls: type, _kind=kind, _rec=record) -> None:
                    registry.add(_kind, name, cls, _rec.package, _rec.version)
                    _rec.components.append((_kind, name))

                try:
                    impl.function(register=register)
                except FmError:
                    raise
                except Exception as exc:  # noqa: BLE001 - isolate a failing plugin from the others
                    record.error = _describe(exc, f"hook {hook} raised")
        if os.environ.get(STRICT_ENV, "") not in ("", "0") and self.broken:
            raise FmError(f"{STRICT_ENV} is set and some plugins are broken: " + "; ".join(
                f"{r.name} ({r.package}): {r.error}" for r in self.broken))
        self._registry = registry
        return registry

    def warn_broken(self) -> None:
        """Print one line on stderr if any plugin is broken."""
        if self.broken:
            names = ", ".join(f"{r.name} ({r.package})" for r in self.broken)
            print(f"warning: broken fmcore plugins skipped: {names}; run `fm plugins` for details",
                  file=sys.stderr)


def _describe(exc: BaseException, what: str) -> str:
    return f"{what}: {type(exc).__name__}: {exc}"


_default_host: PluginHost | None = None


def default_host() -> PluginHost:
    """The process-wide host, with every installed plugin loaded (created on first use)."""
    global _default_host
    if _default_host is None:
        _default_host = PluginHost()
    return _default_host


def get_registry() -> Registry:
    """The registry of every installed (and in-process registered) component."""
    return default_host().registry()


def register_plugin(plugin: ModuleType | object, name: str | None = None) -> PluginRecord:
    """Register a plugin in this process (notebooks, tests), alongside the installed ones."""
    return default_host().register(plugin, name)
