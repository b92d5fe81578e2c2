"""Reading recipe TOML and applying ``--set TABLE.KEY=VALUE`` overrides (which are remembered, so that a
problem in a value given on the command line is blamed on ``--set``, not on the file)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import attrs

from fmcore.core.errors import FmError, did_you_mean
from fmcore.plugins.kinds import RECIPE_TABLES

TABLES = (*RECIPE_TABLES, "train")
#: a recipe is a small text file; anything larger is refused before parsing
MAX_RECIPE_BYTES = 10_000_000


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; syntax errors name the file, line and column."""
    if not path.is_file():
        raise FmError(f"recipe file {str(path)!r} not found" if not path.exists() else
                      f"recipe {str(path)!r} is not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FmError(f"recipe {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_RECIPE_BYTES:
        raise FmError(f"recipe {str(path)!r} is {len(data):,} bytes; a recipe is a small text file (at most "
                      f"{MAX_RECIPE_BYTES:,} bytes)")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise FmError(f"{path}: not a text file (it holds a NUL byte at {_where(data, nul)}); a recipe is a TOML "
                      "text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FmError(f"{path}: not a UTF-8 text file (at {_where(data, exc.start)}: {exc.reason}); a recipe is a "
                      "TOML text file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FmError(f"{path}: invalid TOML: {exc}") from None
    except (RecursionError, MemoryError) as exc:
        raise FmError(f"{path}: invalid TOML: nested too deeply to be a recipe ({type(exc).__name__} while "
                      "parsing); a recipe has a few tables of plain values") from None


def _where(data: bytes, offset: int) -> str:
    """``line L, column C (byte offset O)`` of a byte offset."""
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {column} (byte offset {offset})"


@attrs.define
class Overrides:
    """The ``--set`` values applied to a recipe: ``{"table.key": "table.key=value"}``."""

    given: dict[str, str] = attrs.field(factory=dict)

    def annotate(self, problem: str) -> str:
        """``problem``, plus ``(given by --set ...)`` when it is about a value given on the command line."""
        for key, text in self.given.items():
            table, _, rest = key.partition(".")
            *inner, last = rest.split(".")
            where = f"[{'.'.join([table, *inner])}]"
            if (problem.startswith(f"{where} {last} ") or problem.startswith(f"{where}: unknown option {last!r}")
                    or problem.startswith(f"{where} {last}[") or problem.startswith(f"[{key}]")):
                return f"{problem} (given by --set {text})"
        return problem


def parse_override(text: str) -> tuple[list[str], Any]:
    """``table.key=value`` (or ``table.nested.key=value``) -> (["table", ..., "key"], value); the value is read
    as TOML, else as a string."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise FmError(f"--set {text!r}: expected TABLE.KEY=VALUE, e.g. --set train.steps=200")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    except (RecursionError, MemoryError):
        raise FmError(f"--set {key.strip()}=...: the value is nested too deeply to be a recipe value") from None
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> tuple[dict[str, Any], Overrides]:
    """A copy of ``raw`` with each ``--set TABLE.KEY=VALUE`` applied, and the record of what was set."""
    raw = _copy(raw)
    given = Overrides()
    for text in overrides:
        parts, value = parse_override(text)
        table = parts[0]
        if table not in TABLES:
            raise FmError(f"--set {text!r}: unknown table {table!r}{did_you_mean(table, TABLES)}; "
                          f"tables: {', '.join(TABLES)}")
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if isinstance(child, str):  # grid = "data" becomes a table when one of its options is set
                child = {"name": child}
            elif not isinstance(child, dict):
                child = {}
            node[part] = child
            node = child
        node[parts[-1]] = value
        given.given[".".join(parts)] = text.strip()
    return raw, given


def _copy(value: Any) -> Any:
    return {k: _copy(v) for k, v in value.items()} if isinstance(value, dict) else value
