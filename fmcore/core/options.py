"""Validators for component options (attrs), with messages that say what was expected.

The recipe loader turns a ``ValueError`` raised here into ``[table] key = value: expected ...``.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import attrs


class OptionValueError(ValueError):
    """An option value outside what its component accepts."""

    def __init__(self, key: str, value: Any, expected: str):
        super().__init__(f"{key} = {value!r}: expected {expected}")
        self.key, self.value, self.expected = key, value, expected


def _fail(attribute: attrs.Attribute, value: Any, expected: str):
    raise OptionValueError(attribute.name, value, expected)


def positive(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
    """value > 0."""
    if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
        _fail(attribute, value, "a finite number > 0")


def non_negative(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
    """value >= 0."""
    if not value >= 0 or (isinstance(value, float) and not math.isfinite(value)):
        _fail(attribute, value, "a finite number >= 0")


def in_range(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False):
    """A validator for ``lo <= value <= hi`` (with open ends where asked)."""
    left, right = ("(" if lo_open else "["), (")" if hi_open else "]")

    def check(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
        ok_lo = value > lo if lo_open else value >= lo
        ok_hi = value < hi if hi_open else value <= hi
        if not (ok_lo and ok_hi):
            _fail(attribute, value, f"a number in {left}{lo}, {hi}{right}")

    check.interval = (lo, hi, lo_open, hi_open)  # read by fmcore.testing to draw accepted values
    return check


def one_of(choices: Collection[str]):
    """A validator for a string among ``choices``."""

    def check(_inst: Any, attribute: attrs.Attribute, value: str) -> None:
        if value not in choices:
            from fmcore.core.errors import did_you_mean

            hint = did_you_mean(value, choices) if isinstance(value, str) else ""  # ints: no spelling to suggest
            _fail(attribute, value, f"one of {', '.join(repr(c) for c in choices)}{hint}")

    check.choices = tuple(choices)  # read by fmcore.testing to draw accepted values
    return check


def int_range(lo: int, hi: int):
    """A validator for an integer ``lo <= value <= hi`` (``hi``: beyond it a value cannot be meant)."""

    def check(_inst: Any, attribute: attrs.Attribute, value: int) -> None:
        if not lo <= value <= hi:
            _fail(attribute, value, f"an integer in {lo:,} .. {hi:,}")

    return check


#: the longest list of layer widths (or levels) and the widest layer an option may ask for
MAX_LIST, MAX_WIDTH = 1024, 2**31 - 1


def positive_ints(_inst: Any, attribute: attrs.Attribute, value: list[int]) -> None:
    """A non-empty list of at most :data:`MAX_LIST` integers in 1 .. :data:`MAX_WIDTH`."""
    if len(value) > MAX_LIST:
        raise OptionValueError(attribute.name, f"<a list of {len(value):,} entries>",
                               f"a list of at most {MAX_LIST} integers > 0")
    if not value or any(v <= 0 for v in value):
        _fail(attribute, value, "a non-empty list of integers > 0")
    if any(v > MAX_WIDTH for v in value):
        _fail(attribute, value, f"integers up to {MAX_WIDTH:,}")


@attrs.define(kw_only=True)
class NoOptions:
    """This component has no options."""


def help_field(default: Any = attrs.NOTHING, help: str = "", validator=None, file: bool = False, **kw):
    """``attrs.field`` with a one-line ``help`` (shown by ``fm recipe schema``).

    ``file=True`` marks a path that the recipe loader resolves relative to the recipe's folder.
    """
    return attrs.field(default=default, validator=validator, metadata={"help": help, "file": file}, **kw)


@attrs.frozen
class Choice:
    """A component chosen by name: its kind, registered name, class and structured options.

    Recipes hold one per table (``[sampler]``) and one per nested table (``[sampler.grid]``); ``create``
    builds the live component, ``cls(options, *args)``.
    """

    kind: str
    name: str
    cls: type
    options: Any

    def create(self, *args: Any) -> Any:
        return self.cls(self.options, *args)

    @classmethod
    def of(cls, kind: str, name: str, component: type, **options: Any) -> Choice:
        """A choice of ``component`` (registered as ``name``) with ``options`` (defaults for the rest)."""
        return cls(kind, name, component, component.Options(**options))


def nested(kind: str, name: str, component: type, help: str = "", **options: Any):
    """An option that is itself a component of ``kind`` (default: ``component`` registered as ``name``).

    In a recipe it is a nested table (``[sampler.grid]`` with ``name = "..."`` and the component's options)
    or just its name (``grid = "karras"``); the recipe loader resolves the name through the registry.
    """
    return attrs.field(factory=lambda: Choice.of(kind, name, component, **options),
                       metadata={"help": help, "file": False, "kind": kind})


def nested_kind(field: attrs.Attribute) -> str | None:
    """The component kind of a :func:`nested` option, or None for a plain option."""
    return field.metadata.get("kind")
