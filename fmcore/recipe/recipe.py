"""Recipes: TOML files naming a component and its options per table, plus ``[train]``.

Loading resolves each ``name`` through the registry, then structures that component's own attrs options
class with cattrs (unknown keys refused, types checked strictly). Options that are themselves components
(``[sampler.grid]``, ``[objective.time_sampling]``, ...) are resolved the same way, recursively. Every
problem in the file is gathered and reported in one :class:`RecipeError` naming the file, and for each problem
the table and key, the value and what was expected, with a close match where there is one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs
import cattrs
import tomli_w

from fmcore.core.errors import FmError, did_you_mean, listing
from fmcore.core.options import Choice, nested_kind
from fmcore.plugins.kinds import KINDS, RECIPE_TABLES
from fmcore.plugins.registry import Registry
from fmcore.recipe.toml import Overrides, apply_overrides, read_toml
from fmcore.recipe.train_options import TrainOptions

TABLES = (*RECIPE_TABLES, "train")


class RecipeError(FmError):
    """Everything wrong with a recipe, gathered: ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]):
        self.source, self.problems = source, problems
        if len(problems) == 1:
            text = f"{source}: {problems[0]}"
        else:
            text = f"{source} has {len(problems)} problems: " + "; ".join(
                f"({i}) {p}" for i, p in enumerate(problems, 1))
        super().__init__(text)


@attrs.frozen
class Recipe:
    """A loaded, validated recipe: one :class:`~fmcore.core.options.Choice` per component table, and
    ``[train]``. ``recipe.sampler`` (any table name) is that table's choice."""

    choices: dict[str, Choice]
    train: TrainOptions
    source: str = "<recipe>"

    def __getattr__(self, table: str) -> Choice:
        try:
            return object.__getattribute__(self, "choices")[table]
        except KeyError:
            raise AttributeError(table) from None

    def choice(self, table: str) -> Choice:
        return self.choices[table]

    def to_dict(self, relative_to: Path | None = None) -> dict[str, dict[str, Any]]:
        """The resolved recipe, every default filled in (None values omitted: TOML has no null); file options
        inside the folder ``relative_to`` are written relative to it (a run directory that holds its own files,
        such as ``fm reflow``'s pairs, can then be moved: its recipe is read relative to the run directory)."""
        out = {table: choice_to_dict(choice, relative_to) for table, choice in self.choices.items()}
        out["train"] = _relative(self.train, _plain(converter.unstructure(self.train)), relative_to)
        return out

    def to_toml(self, relative_to: Path | None = None) -> str:
        return tomli_w.dumps(self.to_dict(relative_to))


def choice_to_dict(choice: Choice, relative_to: Path | None = None) -> dict[str, Any]:
    """``{"name": ..., option: value, nested: {...}}`` for a choice (nested choices as tables); file options
    inside ``relative_to`` relative to it."""
    out: dict[str, Any] = {"name": choice.name}
    for f in attrs.fields(type(choice.options)):
        value = getattr(choice.options, f.name)
        if isinstance(value, Choice):
            out[f.name] = choice_to_dict(value, relative_to)
        elif value is not None:
            out[f.name] = converter.unstructure(value)
    return _relative(choice.options, out, relative_to)


def _relative(options: Any, out: dict[str, Any], folder: Path | None) -> dict[str, Any]:
    """``out`` with the file options of ``options`` (``file=True``) that name a path inside ``folder`` made
    relative to it."""
    if folder is None:
        return out
    root = Path(folder).resolve()
    for f in attrs.fields(type(options)):
        value = out.get(f.name)
        if f.metadata.get("file") and isinstance(value, str) and value and Path(value).is_absolute():
            path = Path(value)
            if path.is_relative_to(root):
                out[f.name] = path.relative_to(root).as_posix() or "."
    return out


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
converter.register_unstructure_hook(Choice, choice_to_dict)


def _choice_hook(value: Any, _type: type) -> Choice:
    """Nested components are resolved by :class:`Loader` before cattrs sees the options; only a ready
    :class:`Choice` passes here."""
    if not isinstance(value, Choice):
        raise TypeError(f"expected a component choice, got {type(value).__name__} {value!r}")
    return value


converter.register_structure_hook(Choice, _choice_hook)


@attrs.define
class Loader:
    """Resolves and structures choices, gathering every problem in ``problems``."""

    registry: Registry
    base_dir: Path | None = None
    problems: list[str] = attrs.field(factory=list)

    def choice(self, kind: str, values: Any, where: str, default: Choice | None = None) -> Choice | None:
        """The choice a table (or a bare name) makes, or None after recording why it cannot be made."""
        installed = f"installed: {listing(self.registry.names(kind))}"
        if isinstance(values, str):
            values = {"name": values}
        if not isinstance(values, dict):
            self.problems.append(f"{where} must be a table or a {kind} name, got {type(values).__name__} "
                                 f"{values!r}; {installed}")
            return None
        values = dict(values)
        name = values.pop("name", None if default is None else default.name)
        if not isinstance(name, str):
            self.problems.append(f'{where} needs name = "..." (a string); {installed}')
            return None
        try:
            component = self.registry.get(kind, name, where=f"{where} name")
        except FmError as exc:
            self.problems.append(str(exc))
            return None
        options = self.options(component.options_class, values, where)
        return None if options is None else Choice(kind, name, component.cls, options)

    def options(self, cls: type, values: dict[str, Any], where: str) -> Any:
        """An instance of options class ``cls`` from ``values``, or None after recording every problem."""
        before = len(self.problems)
        fields = {f.name: f for f in attrs.fields(cls)}
        for key in values:
            if key not in fields:
                self.problems.append(f"{where}: unknown option {key!r}{did_you_mean(key, fields)}; "
                                     f"options: {listing(fields)}")
        nested: dict[str, Choice] = {}
        plain: dict[str, Any] = {}
        for key, value in values.items():
            if key not in fields:
                continue
            kind = nested_kind(fields[key])
            if kind is None:
                plain[key] = value
                continue
            default = fields[key].default.factory() if isinstance(fields[key].default, attrs.Factory) else None
            choice = self.choice(kind, value, f"{where[:-1]}.{key}]", default)
            if choice is not None:
                nested[fields[key].alias] = choice
        if len(self.problems) > before:
            self._validated(cls, plain, where)  # still report wrong types and bad values beside the others
            return None
        loose = self._validated(cls, plain, where)
        if loose is None:
            return None
        try:
            options = attrs.evolve(loose, **nested)
        except (ValueError, TypeError) as exc:
            self.problems.append(f"{where} {exc}")
            return None
        return self._resolve_files(options)

    def _cattrs_problems(self, exc: cattrs.BaseValidationError, values: dict[str, Any], where: str) -> None:
        lines = cattrs.transform_error(exc, path="$", format_exception=lambda e, _t: str(e))
        self.problems.extend(f"{where} {_key_message(line, values)}" for line in lines)

    def _validated(self, cls: type, plain: dict[str, Any], where: str) -> Any:
        """``plain`` structured into ``cls`` (nested components at their defaults) with every validator run one by
        one, so that every wrong type and bad value is recorded; None when there was any."""
        before = len(self.problems)
        with attrs.validators.disabled():
            try:
                loose = converter.structure(plain, cls)
            except cattrs.BaseValidationError as exc:
                self._cattrs_problems(exc, plain, where)
                return None
            except (ValueError, TypeError) as exc:  # raised by the class itself (__attrs_post_init__)
                self.problems.append(f"{where} {exc}")
                return None
        for f in attrs.fields(cls):
            if f.validator is not None and f.name in plain:
                try:
                    f.validator(loose, f, getattr(loose, f.name))
                except (ValueError, TypeError) as exc:
                    self.problems.append(f"{where} {exc}")
        return None if len(self.problems) > before else loose

    def _resolve_files(self, options: Any) -> Any:
        """Options marked ``file=True`` become absolute paths (relative ones are relative to the recipe)."""
        if self.base_dir is None:
            return options
        changes = {}
        for f in attrs.fields(type(options)):
            value = getattr(options, f.name)
            if f.metadata.get("file") and isinstance(value, str) and value:
                try:
                    changes[f.alias] = str((self.base_dir / value).resolve())
                except (RuntimeError, OSError):  # a symlink loop: the component that opens it says so
                    changes[f.alias] = os.path.abspath(self.base_dir / value)
        return attrs.evolve(options, **changes) if changes else options


def _key_message(line: str, values: dict[str, Any]) -> str:
    """Turn cattrs' ``msg @ $.key[1]`` into ``key[1] = value: msg``."""
    msg, _, at = line.rpartition(" @ ")
    key = at.removeprefix("$.").removeprefix("$")
    if not key:  # raised by the options class itself (a validator): the message names its key
        return msg
    top = key.split("[")[0]
    shown = f" = {values[top]!r}" if top in values else ""
    return f"{key}{shown}: {msg}"


def structure_options(cls: type, values: dict[str, Any], where: str, registry: Registry | None = None) -> Any:
    """Build options class ``cls`` from ``values`` (``where``, e.g. ``[network]``, prefixes each problem)."""
    loader = Loader(registry if registry is not None else Registry())
    options = loader.options(cls, dict(values), where)
    if loader.problems:
        raise RecipeError(where.split(":")[0] if ":" in where else "options", loader.problems)
    return options


def load_recipe(path: str | Path, registry: Registry, overrides: list[str] = ()) -> Recipe:
    """Read, override and validate a recipe file."""
    path = Path(path)
    raw, given = apply_overrides(read_toml(path), list(overrides))
    return recipe_from_dict(raw, registry, source=str(path), base_dir=path.parent, overrides=given)


def recipe_from_dict(raw: dict[str, Any], registry: Registry, source: str = "<recipe>",
                     base_dir: Path | None = None, overrides: Overrides | None = None) -> Recipe:
    """Validate a parsed recipe; relative file options are resolved against ``base_dir``. Every problem is
    gathered into one :class:`RecipeError`; problems in values given by ``--set`` say so."""
    loader = Loader(registry, base_dir)
    for t in raw:
        if t not in TABLES:
            loader.problems.append(f"unknown table [{t}]{did_you_mean(t, TABLES)}; tables: {', '.join(TABLES)}")
    choices: dict[str, Choice] = {}
    for table, kind in RECIPE_TABLES.items():
        values = raw.get(table)
        if values is None:
            default = KINDS[kind].default
            if default is None:
                loader.problems.append(f"missing table [{table}] (it needs at least name = \"...\"; "
                                       f"installed: {listing(registry.names(kind))})")
                continue
            values = {"name": default}
        if not isinstance(values, dict):
            loader.problems.append(f"{table} must be a table [{table}], got {type(values).__name__}")
            continue
        choice = loader.choice(kind, values, f"[{table}]")
        if choice is not None:
            choices[table] = choice
    train_values = raw.get("train", {})
    train = None
    if isinstance(train_values, dict):
        train = loader.options(TrainOptions, dict(train_values), "[train]")
    else:
        loader.problems.append(f"train must be a table [train], got {type(train_values).__name__}")
    if loader.problems:
        given = overrides or Overrides()
        raise RecipeError(source, [given.annotate(p) for p in loader.problems])
    return Recipe(choices, train, source=source)
