"""Option values to check a component at, drawn from its options class's own validators.

For each option: a number validated by :func:`~fmcore.core.options.in_range` takes points inside the
accepted interval (its closed ends included); :func:`~fmcore.core.options.positive` takes half and twice the
default, :func:`~fmcore.core.options.non_negative` also 0; :func:`~fmcore.core.options.one_of` and ``bool``
take every choice. Every candidate is run through the option's validator, and every combination through the
options class (its cross-field checks): a combination refused with an ``OptionValueError`` is skipped.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import attrs

from fmcore.core.options import OptionValueError, non_negative, positive


def _validators(field: attrs.Attribute) -> list:
    """The field's validator(s), with ``attrs``' ``and_`` composites unpacked."""
    out, todo = [], [field.validator]
    while todo:
        v = todo.pop()
        if v is None:
            continue
        inner = getattr(v, "_validators", None)
        if inner is not None:
            todo.extend(inner)
        else:
            out.append(v)
    return out


def _scaled(default: Any, factors: tuple[float, ...]) -> list:
    if isinstance(default, bool) or not isinstance(default, int | float) or not default:
        return []
    return [max(1, round(default * f)) if isinstance(default, int) else default * f for f in factors]


def candidates(field: attrs.Attribute, default: Any) -> list:
    """Values of one option its validator accepts, besides ``default`` (empty: no way to draw any)."""
    raw: list = []
    if isinstance(default, bool):
        raw = [not default]
    for v in _validators(field):
        if hasattr(v, "interval"):
            lo, hi, lo_open, hi_open = v.interval
            if math.isfinite(lo) and math.isfinite(hi):
                raw += [lo + (hi - lo) * f for f in (0.1, 0.5, 0.9)]
                raw += [end for end, is_open in ((lo, lo_open), (hi, hi_open)) if not is_open]
                if isinstance(default, int) and not isinstance(default, bool):
                    raw = [round(x) for x in raw]
        elif hasattr(v, "choices"):
            raw += list(v.choices)
        elif v is positive:
            raw += _scaled(default, (0.5, 2.0))
        elif v is non_negative:
            raw += [type(default)(0), *_scaled(default, (0.5, 2.0))] if isinstance(default, int | float) else []
    out = []
    for value in raw:
        if value == default or value in out:
            continue
        try:
            if field.validator is not None:
                field.validator(None, field, value)
        except ValueError:
            continue
        out.append(value)
    return out


def option_variants(options: Any, joint: int = 4, seed: int = 0, limit: int = 16) -> list:
    """``options``, then copies with one option changed at a time to each of its :func:`candidates`, then
    ``joint`` seeded random combinations; refused combinations skipped, at most ``limit`` in all."""
    if not attrs.has(type(options)):
        return [options]
    per_field = {f.name: candidates(f, getattr(options, f.name)) for f in attrs.fields(type(options))
                 if f.init and not attrs.has(type(getattr(options, f.name)))}
    per_field = {name: values for name, values in per_field.items() if values}
    changes: list[dict] = [{name: v} for name, values in per_field.items() for v in values]
    rng = random.Random(seed)
    for _ in range(joint):
        changes.append({name: rng.choice([getattr(options, name), *values]) for name, values in per_field.items()})
    out, seen = [options], {repr(options)}
    for change in itertools.islice(changes, 4 * limit):
        try:
            variant = attrs.evolve(options, **change)
        except OptionValueError:
            continue
        if repr(variant) not in seen:
            seen.add(repr(variant))
            out.append(variant)
        if len(out) >= limit:
            break
    return out
