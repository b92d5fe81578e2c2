"""Recipes: TOML files naming a component and its options per table, plus ``[train]``.

Loading resolves each ``name`` through the registry, then structures that component's own attrs options
class with cattrs (unknown keys refused, types checked strictly). Every problem becomes an
:class:`~fmcore.core.errors.FmError` naming the file, the table and key, the value and what was expected.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import attrs
import cattrs
import tomli_w

from fmcore.core.errors import FmError, did_you_mean, listing
from fmcore.core.options import OptionValueError
from fmcore.plugins.registry import KINDS, RECIPE_KINDS, Registry
from fmcore.recipe.train_options import TrainOptions

COMPONENT_TABLES = {table: kind for kind, (_base, table) in KINDS.items() if kind in RECIPE_KINDS}
TABLES = (*COMPONENT_TABLES, "train")
DEFAULT_NAMES = {"sampler": "euler"}


@attrs.frozen
class Choice:
    """A component chosen by a recipe table: its kind, registered name and structured options."""

    kind: str
    name: str
    options: Any


@attrs.frozen
class Recipe:
    """A loaded, validated recipe."""

    data: Choice
    path: Choice
    objective: Choice
    network: Choice
    sampler: Choice
    train: TrainOptions
    source: str = "<recipe>"

    def choice(self, table: str) -> Choice:
        return getattr(self, table)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The resolved recipe, every default filled in (None values omitted: TOML has no null)."""
        out = {}
        for table in COMPONENT_TABLES:
            choice = self.choice(table)
            out[table] = {"name": choice.name, **_plain(converter.unstructure(choice.options))}
        out["train"] = _plain(converter.unstructure(self.train))
        return out

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _strict(kind: type, expected: str):
    def hook(value: Any, _type: type) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise TypeError(f"expected {expected}, got a boolean")
        if kind is float and isinstance(value, int):
            return float(value)
        if not isinstance(value, kind):
            raise TypeError(f"expected {expected}, got {type(value).__name__} {value!r}")
        return value

    return hook


converter = cattrs.Converter(forbid_extra_keys=True)
for _kind, _expected in ((int, "an integer"), (float, "a number"), (str, "a string"), (bool, "true or false")):
    converter.register_structure_hook(_kind, _strict(_kind, _expected))


def structure_options(cls: type, values: dict[str, Any], where: str) -> Any:
    """Build options class ``cls`` from ``values``; ``where`` (e.g. ``recipe.toml: [network]``) prefixes errors."""
    fields = {f.name: f for f in attrs.fields(cls)}
    unknown = [k for k in values if k not in fields]
    if unknown:
        key = unknown[0]
        raise FmError(f"{where}: unknown option {key!r}{did_you_mean(key, fields)}; "
                      f"options: {listing(fields)}")
    try:
        return converter.structure(values, cls)
    except OptionValueError as exc:
        raise FmError(f"{where} {exc}") from None
    except cattrs.BaseValidationError as exc:
        lines = cattrs.transform_error(exc, path="$", format_exception=lambda e, _t: str(e))
        details = "; ".join(_key_message(line, values) for line in lines)
        raise FmError(f"{where} {details}") from None


def _key_message(line: str, values: dict[str, Any]) -> str:
    """Turn cattrs' ``msg @ $.key[1]`` into ``key[1] = value: msg``."""
    msg, _, at = line.rpartition(" @ ")
    key = at.removeprefix("$.").removeprefix("$")
    if not key:  # raised by the options class itself (a validator): the message names its key
        return msg
    top = key.split("[")[0]
    shown = f" = {values[top]!r}" if top in values else ""
    return f"{key}{shown}: {msg}"


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; syntax errors name the file, line and column."""
    if not path.is_file():
        raise FmError(f"recipe file {str(path)!r} not found" if not path.exists() else
                      f"recipe {str(path)!r} is not a file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise FmError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise FmError(f"{path}: not a UTF-8 text file ({exc.reason})") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``table.key=value`` -> (["table", "key"], value); the value is read as TOML, else as a string."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) != 2 or not all(parts):
        raise FmError(f"--set {text!r}: expected TABLE.KEY=VALUE, e.g. --set train.steps=200")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``raw`` with each ``--set TABLE.KEY=VALUE`` applied."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for text in overrides:
        (table, key), value = parse_override(text)
        if table not in TABLES:
            raise FmError(f"--set {text!r}: unknown table {table!r}{did_you_mean(table, TABLES)}; "
                          f"tables: {', '.join(TABLES)}")
        raw.setdefault(table, {})[key] = value
    return raw


def load_recipe(path: str | Path, registry: Registry, overrides: list[str] = ()) -> Recipe:
    """Read, override and validate a recipe file."""
    path = Path(path)
    return recipe_from_dict(apply_overrides(read_toml(path), list(overrides)), registry, source=str(path),
                            base_dir=path.parent)


def recipe_from_dict(raw: dict[str, Any], registry: Registry, source: str = "<recipe>",
                     base_dir: Path | None = None) -> Recipe:
    """Validate a parsed recipe; relative file options are resolved against ``base_dir``."""
    unknown = [t for t in raw if t not in TABLES]
    if unknown:
        t = unknown[0]
        raise FmError(f"{source}: unknown table [{t}]{did_you_mean(t, TABLES)}; tables: {', '.join(TABLES)}")
    choices = {}
    for table, kind in COMPONENT_TABLES.items():
        values = raw.get(table)
        if values is None:
            if table not in DEFAULT_NAMES:
                raise FmError(f"{source}: missing table [{table}] (it needs at least name = \"...\"; "
                              f"installed: {listing(registry.names(kind))})")
            values = {"name": DEFAULT_NAMES[table]}
        if not isinstance(values, dict):
            raise FmError(f"{source}: {table} must be a table [{table}], got {type(values).__name__}")
        values = dict(values)
        name = values.pop("name", None)
        if not isinstance(name, str):
            raise FmError(f"{source}: [{table}] needs name = \"...\" (a string); "
                          f"installed: {listing(registry.names(kind))}")
        component = registry.get(kind, name, where=f"{source}: [{table}] name")
        options = structure_options(component.options_class, values, f"{source}: [{table}]")
        choices[table] = Choice(kind, name, _resolve_files(options, base_dir))
    train = raw.get("train", {})
    if not isinstance(train, dict):
        raise FmError(f"{source}: train must be a table [train], got {type(train).__name__}")
    return Recipe(**choices, train=structure_options(TrainOptions, train, f"{source}: [train]"), source=source)


def _resolve_files(options: Any, base_dir: Path | None) -> Any:
    """Options marked ``file=True`` become absolute paths (relative ones are relative to the recipe)."""
    if base_dir is None:
        return options
    changes = {}
    for f in attrs.fields(type(options)):
        value = getattr(options, f.name)
        if f.metadata.get("file") and isinstance(value, str) and value:
            changes[f.name.lstrip("_")] = str((base_dir / value).resolve())
    return attrs.evolve(options, **changes) if changes else options
