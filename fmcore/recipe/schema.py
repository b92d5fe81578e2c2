"""``fm recipe schema``: every component's options, taken from the options classes themselves."""

from __future__ import annotations

import json
from typing import Any

import attrs

from fmcore.core.errors import FmError, did_you_mean
from fmcore.core.options import Choice
from fmcore.plugins.kinds import KINDS, kind_named
from fmcore.plugins.registry import Registry
from fmcore.recipe.recipe import converter
from fmcore.recipe.train_options import TrainOptions


def _type_name(tp: Any) -> str:
    return tp if isinstance(tp, str) else getattr(tp, "__name__", str(tp))


def option_rows(cls: type) -> list[dict[str, Any]]:
    """One row per option: name, type, default (None when required) and help."""
    rows = []
    for f in attrs.fields(cls):
        if f.default is attrs.NOTHING:
            default, required = None, True
        else:
            value = f.default.factory() if isinstance(f.default, attrs.Factory) else f.default  # type: ignore[attr-defined]
            default, required = (value.name if isinstance(value, Choice) else converter.unstructure(value)), False
        rows.append({"name": f.name, "type": _type_name(f.type), "default": default, "required": required,
                     "help": f.metadata.get("help", "")})
    return rows


def schema(registry: Registry, kind: str | None = None, name: str | None = None) -> dict[str, Any]:
    """``{kind: {name: {"help", "package", "options": [...]}}}``, plus ``train`` for the [train] table."""
    if kind is not None and kind != "train":
        resolved = kind_named(kind)
        if resolved is None:
            words = (*KINDS, "data", "train")
            raise FmError(f"unknown kind {kind!r}{did_you_mean(kind, words)}; kinds: {', '.join((*KINDS, 'train'))} "
                          "(or a recipe table: data)")
        kind = resolved
    out: dict[str, Any] = {}
    for k in KINDS if kind is None else ([kind] if kind != "train" else []):
        comps = registry.components(k)
        if name is not None:
            comps = [registry.get(k, name)]
        out[k] = {c.name: {"help": c.help, "package": c.package, "options": option_rows(c.options_class)}
                  for c in comps}
    if kind in (None, "train"):
        out["train"] = {"train": {"help": "the [train] table", "package": "fmcore",
                                  "options": option_rows(TrainOptions)}}
    return out


def print_schema(registry: Registry, kind: str | None, name: str | None, as_json: bool = False) -> None:
    data = schema(registry, kind, name)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    for k, comps in data.items():
        for cname, info in comps.items():
            if k == "train":
                header = "[train]"
            elif KINDS[k].table is not None:
                header = f"[{KINDS[k].table}] name = {cname!r}"
            else:  # chosen outside recipes, e.g. `fm eval --features NAME`
                header = f"{k} {cname!r}"
            print(f"{header}  ({k} from {info['package']}): {info['help']}")
            if not info["options"]:
                print("    (no options)")
            for row in info["options"]:
                default = "required" if row["required"] else f"default {json.dumps(row['default'])}"
                print(f"    {row['name']:<18} {row['type']:<14} {default:<24} {row['help']}")
            print()


__all__ = ["option_rows", "print_schema", "schema"]
