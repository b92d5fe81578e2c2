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

from fmcore.core.errors import FmError, did_you_mean
from fmcore.plugins import hookspecs
from fmcore.plugins.kinds import HOOK_KINDS
from fmcore.plugins.registry import Registry, check_component

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
        self.pm.add_hookspecs(hookspecs.Specs)
        self.records: dict[str, PluginRecord] = {}
        self._registry: Registry | None = None
        if entry_points:
            self.load_entry_points()

    def load_entry_points(self) -> None:
        """Import and register every entry point of the ``fmcore`` group, recording failures.

        Plugins are named after their entry point; when two distributions use the same entry point name,
        the second is named ``<distribution>:<entry point>`` (never skipped).
        """
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist
            package = dist.metadata["Name"] if dist is not None else "<unknown>"
            version = dist.version if dist is not None else ""
            name = ep.name if ep.name not in self.records else f"{package}:{ep.name}"
            if name in self.records:  # the same distribution seen twice on sys.path
                continue
            try:
                plugin = ep.load()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001 - a plugin may fail in any way, even SystemExit
                self.records[name] = PluginRecord(name, package, version,
                                                  error=_describe(exc, f"import of {ep.value!r} failed"))
                continue
            self.register(plugin, name, package, version)

    def register(self, plugin: object, name: str | None = None, package: str = "<in-process>",
                 version: str = "") -> PluginRecord:
        """Register a plugin object (module, class or instance with hook implementations) in-process.

        A malformed plugin is not registered; its record says why (``record.error``).
        """
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if name in self.records:
            raise FmError(f"a plugin named {name!r} is already registered (by {self.records[name].package})")
        record = PluginRecord(name, package, version)
        self.records[name] = record
        self._registry = None
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            record.error = "malformed hook implementation: " + " ".join(str(exc).split())
            return record
        except ValueError as exc:
            record.error = " ".join(str(exc).split())
            return record
        problems = self._hook_problems(plugin)
        if problems:
            self.pm.unregister(plugin)
            record.error = "; ".join(problems)
        return record

    def _hook_problems(self, plugin: object) -> list[str]:
        """Hook implementations pluggy accepts but fmcore cannot use: misnamed, unmarked, wrapping, or
        taking no ``register`` argument; and a plugin with no hook implementation at all."""
        problems, impls = [], []
        for hook, caller in vars(self.pm.hook).items():
            for impl in caller.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                impls.append(impl)
                if caller.spec is None:
                    problems.append(f"hook implementation {hook!r} matches no fmcore hook"
                                    f"{did_you_mean(hook, HOOK_KINDS)}; hooks: "
                                    + ", ".join(HOOK_KINDS))
                elif impl.hookwrapper or impl.wrapper:
                    problems.append(f"hook implementation {hook!r} is a wrapper; fmcore hooks are plain functions")
                elif tuple(impl.argnames) != ("register",):
                    problems.append(f"hook implementation {hook}({', '.join(impl.argnames)}) must take exactly one "
                                    "argument, `register`")
        if not impls:
            unmarked = sorted(attr for attr in dir(plugin) if attr in HOOK_KINDS
                              and callable(getattr(plugin, attr, None)))
            if unmarked:
                problems.append(f"{', '.join(unmarked)} is not marked with @fmcore.hookimpl, so fmcore cannot "
                                "call it")
            else:
                problems.append("it has no fmcore hook implementation (expected a function such as "
                                "`@fmcore.hookimpl def register_paths(register): ...`)")
        return problems

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
        """Call every plugin's hooks and collect components.

        Each plugin is called on its own: what it registers is checked and kept aside, and added to the
        registry only when all its hooks have returned, so a plugin whose hook raises halfway (or registers
        something that is not a component) contributes nothing and is recorded as broken. Two plugins
        registering the same name for the same kind clash: only that name is refused, where it is used.
        """
        if self._registry is not None:
            return self._registry
        registry = Registry()
        for record in self.records.values():
            record.components = []
        for name, record in self.records.items():
            plugin = self.pm.get_plugin(name)
            if plugin is None or record.error:
                continue
            staged: list[tuple[str, str, type]] = []
            for hook, kind in HOOK_KINDS.items():
                impls = [i for i in getattr(self.pm.hook, hook).get_hookimpls() if i.plugin is plugin]

                def register(cname: str, cls: type, _kind: str = kind, _rec: PluginRecord = record,
                             _staged: list = staged) -> None:
                    check_component(_kind, cname, cls, _rec.package)
                    _staged.append((_kind, cname, cls))

                for impl in impls:
                    try:
                        returned = impl.function(register=register)
                    except KeyboardInterrupt:
                        raise
                    except BaseException as exc:  # noqa: BLE001 - isolate a failing plugin from the others
                        record.error = _describe(exc, f"hook {hook} raised")
                        break
                    if returned is not None:
                        record.error = (f"hook {hook} returned {_short(returned)} instead of calling "
                                        f"register(name, cls) for each {kind}; fmcore ignores return values")
                        break
                if record.error:
                    break
            if record.error:
                continue
            for kind, cname, cls in staged:
                registry.add(kind, cname, cls, record.package, record.version)
                record.components.append((kind, cname))
        if os.environ.get(STRICT_ENV, "") not in ("", "0") and (self.broken or registry.clashes()):
            raise FmError(f"{STRICT_ENV} is set and some plugins are broken or clash: " + "; ".join(
                [f"{r.name} ({r.package}): {r.error}" for r in self.broken]
                + [registry.clash_message(kind, name) for kind, name in registry.clashes()]))
        self._registry = registry
        return registry

    def warn_broken(self) -> None:
        """Print one line on stderr if any plugin is broken, and one per name that two plugins registered."""
        if self.broken:
            names = ", ".join(f"{r.name} ({r.package})" for r in self.broken)
            print(f"warning: broken fmcore plugins skipped: {names}; run `fm plugins` for details",
                  file=sys.stderr)
        for kind, name in self._registry.clashes() if self._registry is not None else ():
            print(f"warning: {self._registry.clash_message(kind, name)}; recipes that use {kind} {name!r} are "
                  "refused until then, everything else works", file=sys.stderr)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(exc: BaseException, what: str) -> str:
    """``what: ExceptionType: message`` on one line."""
    return " ".join(f"{what}: {type(exc).__name__}: {exc}".split())


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
