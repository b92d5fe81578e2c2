"""Registries: one per component kind, mapping names to component classes and their options.

Names are resolved only here: a recipe never imports a dotted path.
"""

from __future__ import annotations

import attrs

from fmcore.core.dataset import Dataset
from fmcore.core.errors import FmError, did_you_mean, listing
from fmcore.core.features import FeatureExtractor
from fmcore.core.network import Network
from fmcore.core.objective import Objective
from fmcore.core.path import ProbabilityPath
from fmcore.core.sampler import Sampler

#: kind -> (base class, recipe table)
KINDS: dict[str, tuple[type, str]] = {
    "dataset": (Dataset, "data"),
    "path": (ProbabilityPath, "path"),
    "objective": (Objective, "objective"),
    "network": (Network, "network"),
    "sampler": (Sampler, "sampler"),
    "feature": (FeatureExtractor, "features"),  # for `fm eval --features NAME`, not a recipe table
}

#: The kinds a recipe names in a table of its own (the others are chosen elsewhere).
RECIPE_KINDS = ("dataset", "path", "objective", "network", "sampler")

#: The toolkit's own plugin packages, so that a missing one can be named in an error.
BUILTIN_PACKAGES: dict[str, dict[str, str]] = {
    "dataset": {n: "fmcore-datasets" for n in ("moons", "8gaussians", "checkerboard", "circles", "spirals", "file",
                                                       "digits", "image_folder")},
    "path": {n: "fmcore-paths" for n in ("condot", "vp", "ve")},
    "objective": {n: "fmcore-objectives" for n in ("cfm", "dsm", "ddpm")},
    "network": {n: "fmcore-networks" for n in ("mlp", "unet", "oracle")},
    "sampler": {n: "fmcore-samplers" for n in ("euler", "heun", "euler_maruyama", "langevin", "pc")},
    "feature": {n: "fmcore-datasets" for n in ("digits",)},
}


@attrs.frozen
class Component:
    """A registered component: its class, options class and where it came from."""

    kind: str
    name: str
    cls: type
    package: str
    version: str

    @property
    def options_class(self) -> type:
        return self.cls.Options

    @property
    def help(self) -> str:
        doc = (self.cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


def check_component(kind: str, name: str, cls: type, package: str = "<in-process>") -> None:
    """Raise an :class:`FmError` unless ``cls`` can be registered as component ``name`` of ``kind``."""
    if kind not in KINDS:
        raise FmError(f"{package} registers unknown component kind {kind!r}; kinds are {listing(KINDS)}")
    if not isinstance(name, str) or not name or name != name.strip():
        raise FmError(f"{package} registers a {kind} under the name {name!r}; a name is a non-empty string "
                      "without surrounding spaces")
    base = KINDS[kind][0]
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise FmError(f"{package} registers {kind} {name!r} as {cls!r}, which is not a subclass of "
                      f"fmcore.{base.__name__}")
    if not attrs.has(getattr(cls, "Options", None)):
        raise FmError(f"{package} registers {kind} {name!r}, whose class {cls.__name__} has no attrs "
                      "`Options` class")


class DuplicateComponentError(FmError):
    """Two plugins registered the same name for the same kind."""


class Registry:
    """All components by kind and name."""

    def __init__(self):
        self._components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}

    def add(self, kind: str, name: str, cls: type, package: str = "<in-process>", version: str = "") -> None:
        """Register ``cls`` as component ``name`` of ``kind``; check it is the right kind of class."""
        check_component(kind, name, cls, package)
        existing = self._components[kind].get(name)
        if existing is not None:
            first, second = sorted([f"{existing.package} ({existing.cls.__module__}.{existing.cls.__qualname__})",
                                    f"{package} ({cls.__module__}.{cls.__qualname__})"])
            raise DuplicateComponentError(f"{kind} {name!r} is registered twice: by {first} and by {second}; "
                                          "uninstall one of the two packages")
        self._components[kind][name] = Component(kind, name, cls, package, version)

    def names(self, kind: str) -> list[str]:
        return sorted(self._components[kind])

    def components(self, kind: str) -> list[Component]:
        return [self._components[kind][n] for n in self.names(kind)]

    def __contains__(self, key: tuple[str, str]) -> bool:
        kind, name = key
        return name in self._components.get(kind, {})

    def get(self, kind: str, name: str, where: str = "") -> Component:
        """The component, or an error that lists what is installed and suggests a close match."""
        try:
            return self._components[kind][name]
        except KeyError:
            pass
        where = f"{where}: " if where else ""
        hint = did_you_mean(name, self.names(kind))
        package = BUILTIN_PACKAGES.get(kind, {}).get(name)
        install = (f"; {kind} {name!r} comes with the package {package!r}, which is not installed "
                   f"(pip install {package}, or plugins/{package} from the fmcore repository)") if package else ""
        raise FmError(f"{where}unknown {kind} {name!r}{hint}; installed: {listing(self.names(kind))}{install}")
