"""Registries: one per component kind, mapping names to component classes and their options.

Names are resolved only here: a recipe never imports a dotted path. A class is checked when it is registered
(:func:`check_component`): the right base class, concrete, an attrs ``Options`` class derived from the kind's
base options, whose defaults pass its own validators.
"""

from __future__ import annotations

import inspect

import attrs

from fmcore.core.errors import FmError, did_you_mean, listing
from fmcore.plugins.kinds import KINDS

#: The toolkit's own plugin packages, so that a missing one can be named in an error.
BUILTIN_PACKAGES: dict[str, dict[str, str]] = {
    "dataset": {n: "fmcore-datasets" for n in ("moons", "8gaussians", "checkerboard", "circles", "spirals", "file",
                                               "digits", "image_folder", "gaussian_mixture", "pairs",
                                               "shards")},
    "path": {n: "fmcore-paths" for n in ("condot", "vp", "ve")},
    "objective": {n: "fmcore-objectives" for n in ("cfm", "dsm", "ddpm", "ssm")},
    "network": {n: "fmcore-networks" for n in ("mlp", "unet", "oracle")},
    "sampler": {n: "fmcore-samplers" for n in ("euler", "heun", "euler_maruyama", "langevin", "pc",
                                                            "ddim", "dpm_solver_pp", "unipc", "edm", "dopri5", "rk4",
                                                            "adams")},
    "grid": {n: "fmcore-samplers" for n in ("uniform", "data", "angle", "karras", "logsnr", "times")},
    "time_density": {n: "fmcore-objectives" for n in ("uniform", "logit_normal", "power", "point")},
    "diffusion": {n: "fmcore-samplers" for n in ("path", "constant", "zero")},
    "feature": {n: "fmcore-datasets" for n in ("digits",)},
    "coupling": {n: "fmcore-objectives" for n in ("independent", "ot", "sinkhorn", "pairs")},
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

    @property
    def source(self) -> str:
        """``name (package version)`` for messages."""
        return f"{self.name} ({self.package}{' ' + self.version if self.version else ''})"


def check_component(kind: str, name: str, cls: type, package: str = "<in-process>") -> None:
    """Raise an :class:`FmError` unless ``cls`` can be registered as component ``name`` of ``kind``."""
    what = f"{package} registers {kind} {name!r}"
    if kind not in KINDS:
        raise FmError(f"{package} registers unknown component kind {kind!r}; kinds are {listing(KINDS)}")
    if not isinstance(name, str) or not name or name != name.strip():
        raise FmError(f"{package} registers a {kind} under the name {name!r}; a name is a non-empty string "
                      "without surrounding spaces")
    spec = KINDS[kind]
    if not (isinstance(cls, type) and issubclass(cls, spec.base)):
        raise FmError(f"{what} as {cls!r}, which is not a subclass of fmcore.{spec.base.__name__}")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise FmError(f"{what} as {cls.__name__}, which is abstract (it does not implement {missing})")
    lower = vars(cls).get("options")
    if isinstance(lower, type) and attrs.has(lower) and "Options" not in vars(cls):
        raise FmError(f"{what}: its class {cls.__name__} sets `options = {lower.__name__}`; the options class "
                      "attribute is spelled `Options`")
    options = getattr(cls, "Options", None)
    if not attrs.has(options):
        raise FmError(f"{what}, whose class {cls.__name__} has no attrs `Options` class")
    if spec.options_base is not None and not issubclass(options, spec.options_base):
        raise FmError(f"{what}: its options class {options.__name__} does not derive from "
                      f"fmcore.{spec.options_base.__name__}, so it lacks the options every {kind} has")
    _check_defaults(what, options)


def _check_defaults(what: str, options: type) -> None:
    """Every default of ``options`` passes its validators (when all fields have defaults)."""
    if any(f.default is attrs.NOTHING for f in attrs.fields(options)):
        return
    try:
        instance = options()
    except (ValueError, TypeError) as exc:
        raise FmError(f"{what}: the defaults of its options class {options.__name__} fail its own checks: "
                      f"{exc}") from None
    for f in attrs.fields(options):
        value = getattr(instance, f.name)
        expected = SCALARS.get(f.type if isinstance(f.type, str) else getattr(f.type, "__name__", ""))
        if expected is None:
            continue
        ok = isinstance(value, expected) and not (isinstance(value, bool) and expected is not bool)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise FmError(f"{what}: option {f.name} of {options.__name__} defaults to {value!r}, which is not "
                          f"{SCALAR_WORDS[expected]}")


SCALARS = {"int": int, "float": float, "str": str, "bool": bool}
SCALAR_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


class DuplicateComponentError(FmError):
    """Two plugins registered the same name for the same kind, and a recipe (or call) uses that name."""


class Registry:
    """All components by kind and name. A name registered by two packages is a clash: it is listed, and
    refused (naming both packages) only where it is used, so every other component keeps working."""

    def __init__(self):
        self._components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self._clashes: dict[tuple[str, str], list[Component]] = {}

    def add(self, kind: str, name: str, cls: type, package: str = "<in-process>", version: str = "") -> None:
        """Register ``cls`` as component ``name`` of ``kind``; check it is the right kind of class. A second
        registration of a taken name is recorded as a clash (see :meth:`clashes`)."""
        check_component(kind, name, cls, package)
        component = Component(kind, name, cls, package, version)
        existing = self._components[kind].get(name)
        if existing is not None:
            self._clashes.setdefault((kind, name), [existing]).append(component)
            return
        self._components[kind][name] = component

    def clashes(self) -> dict[tuple[str, str], list[Component]]:
        """``{(kind, name): [every component registered under it]}`` for names registered more than once."""
        return dict(self._clashes)

    def clash_message(self, kind: str, name: str) -> str:
        where = sorted(f"{c.package} ({c.cls.__module__}.{c.cls.__qualname__})" for c in self._clashes[(kind, name)])
        return (f"{kind} {name!r} is registered twice: by {' and by '.join(where)}; uninstall one of the "
                f"{'two' if len(where) == 2 else len(where)} packages")

    def names(self, kind: str) -> list[str]:
        return sorted(self._components[kind])

    def components(self, kind: str) -> list[Component]:
        return [self._components[kind][n] for n in self.names(kind)]

    def __contains__(self, key: tuple[str, str]) -> bool:
        kind, name = key
        return name in self._components.get(kind, {})

    def find(self, kind: str, cls: type) -> Component | None:
        """The component registered with class ``cls`` (the first by name), if any."""
        return next((c for c in self.components(kind) if c.cls is cls), None)

    def get(self, kind: str, name: str, where: str = "") -> Component:
        """The component, or an error that lists what is installed and suggests a close match (or, for a name
        two plugins registered, names both packages)."""
        where = f"{where}: " if where else ""
        if (kind, name) in self._clashes:
            raise DuplicateComponentError(f"{where}{self.clash_message(kind, name)}")
        try:
            return self._components[kind][name]
        except KeyError:
            pass
        hint = did_you_mean(name, self.names(kind))
        package = BUILTIN_PACKAGES.get(kind, {}).get(name)
        install = (f"; {kind} {name!r} comes with the package {package!r}, which is not installed "
                   f"(pip install {package}, or plugins/{package} from the fmcore repository)") if package else ""
        raise FmError(f"{where}unknown {kind} {name!r}{hint}; installed: {listing(self.names(kind))}{install}")
