"""`fm recipe schema` and `fm recipe show`: complete, and taken from the options classes themselves."""

from __future__ import annotations

import json
import tomllib

import attrs
import pytest

from fmcore import Choice
from fmcore.plugins.kinds import KINDS
from fmcore.recipe.recipe import converter, load_recipe
from fmcore.recipe.train_options import TrainOptions


def _expected_rows(cls: type) -> list[dict]:
    rows = []
    for f in attrs.fields(cls):
        required = f.default is attrs.NOTHING
        value = None if required else (f.default.factory() if isinstance(f.default, attrs.Factory) else f.default)
        default = value.name if isinstance(value, Choice) else converter.unstructure(value)
        type_name = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        rows.append({"name": f.name, "type": type_name,
                     "default": default, "required": required, "help": f.metadata.get("help", "")})
    return rows


def test_schema_json_matches_every_options_class(fm, registry):
    code, out, err = fm("recipe", "schema", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {*KINDS, "train"}
    for kind in KINDS:
        assert set(data[kind]) == set(registry.names(kind)), kind
        for comp in registry.components(kind):
            info = data[kind][comp.name]
            assert info["package"] == comp.package
            assert info["help"] == comp.help and info["help"], f"{kind} {comp.name} has no docstring"
            assert info["options"] == _expected_rows(comp.options_class), (kind, comp.name)
            for row in info["options"]:
                assert row["help"], f"{kind} {comp.name}: option {row['name']} has no help"
    assert data["train"]["train"]["options"] == _expected_rows(TrainOptions)


def test_schema_text_lists_every_option_with_type_default_and_help(fm, registry):
    code, out, _ = fm("recipe", "schema")
    assert code == 0
    blocks = {block.splitlines()[0]: block for block in out.strip().split("\n\n")}
    for kind in KINDS:
        for comp in registry.components(kind):
            table = KINDS[kind].table
            header = f"[{table}] name = {comp.name!r}" if table else f"{kind} {comp.name!r}"
            header += f"  ({kind} from {comp.package}): {comp.help}"
            assert header in blocks, header
            lines = blocks[header].splitlines()[1:]
            rows = _expected_rows(comp.options_class)
            assert len(lines) == max(len(rows), 1)
            for line, row in zip(lines, rows, strict=False):
                default = "required" if row["required"] else f"default {json.dumps(row['default'])}"
                assert line.startswith(f"    {row['name']:<18} {row['type']:<14} "), line
                assert default in line and line.endswith(row["help"]), line


def test_schema_for_one_kind_and_one_name(fm):
    code, out, _ = fm("recipe", "schema", "path", "vp")
    assert code == 0
    assert out.startswith("[path] name = 'vp'  (path from fmcore-paths): alpha_t = exp(-T(1 - t) / 2)")
    assert "    beta_min           float          default 0.1              noise rate b(s)" in out
    assert "[train]" not in out and "condot" not in out
    code, out, _ = fm("recipe", "schema", "train")
    assert out.startswith("[train]  (train from fmcore): the [train] table")
    assert "    steps              int            default 5000             optimiser steps" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pth",), "error: unknown kind 'pth' (did you mean 'path'?); kinds: dataset, path, objective"),
        (("path", "cosin"), "error: unknown path 'cosin'"),
    ],
)
def test_schema_errors(fm, args, message):
    code, _, err = fm("recipe", "schema", *args)
    assert code == 2
    assert err.startswith(message), err


def test_recipe_show_fills_every_default(fm, write_recipe, registry):
    recipe_file = write_recipe()
    code, out, err = fm("recipe", "show", recipe_file, "--set", "sampler.steps=7")
    assert code == 0, err
    shown = tomllib.loads(out)
    recipe = load_recipe(recipe_file, registry, ["sampler.steps=7"])
    for table, kind in (("data", "dataset"), ("path", "path"), ("objective", "objective"), ("network", "network"),
                        ("sampler", "sampler")):
        options = registry.get(kind, shown[table]["name"]).options_class
        expected = {f.name for f in attrs.fields(options) if getattr(recipe.choice(table).options, f.name) is not None}
        assert set(shown[table]) == {"name", *expected}, table
    assert set(shown["train"]) == {f.name for f in attrs.fields(TrainOptions)} - {"mixed_precision"}
    assert shown["sampler"]["steps"] == 7 and shown["path"]["sigma_min"] == 0.0
    # what `show` prints is itself a valid recipe that resolves to the same thing
    again = write_recipe(out, name="shown.toml")
    code, out2, _ = fm("recipe", "show", again)
    assert code == 0 and tomllib.loads(out2) == shown
