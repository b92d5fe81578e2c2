"""``fm recipe check|show|schema``: validate and build a recipe, print it resolved, or document options."""

from __future__ import annotations

import argparse
from pathlib import Path

from fmcore.cli.common import add_set, registry_of


def add_parser(sub) -> argparse.ArgumentParser:
    r = sub.add_parser("recipe", help="check, show or document recipes")
    rsub = r.add_subparsers(dest="recipe_command", required=True, metavar="SUBCOMMAND")
    for name, what in (("check", "validate a recipe and build its components, without training"),
                       ("show", "print the resolved recipe with every default filled in")):
        q = rsub.add_parser(name, help=what)
        q.add_argument("recipe")
        add_set(q)
    sc = rsub.add_parser("schema", help="list component options with types, defaults and help")
    sc.add_argument("kind", nargs="?", help="a kind (sampler, grid, ...) or a recipe table (data, ...)")
    sc.add_argument("name", nargs="?")
    sc.add_argument("--json", action="store_true")
    return r


def run(args, host) -> int:
    from fmcore import api  # the API pulls in accelerate, scipy and matplotlib: only when a command needs them

    registry = registry_of(host)
    if args.recipe_command == "schema":
        from fmcore.recipe.schema import print_schema

        print_schema(registry, args.kind, args.name, as_json=args.json)
        return 0
    recipe = api.load_recipe(args.recipe, args.set, registry=registry)
    if args.recipe_command == "check":
        c = api.build(recipe, registry=registry, training=True)
        if recipe.train.init:
            from fmcore.run.rundir import load_init

            load_init(c.network, Path(recipe.train.init), recipe.network)
        print(f"{args.recipe}: ok ({recipe.data.name} data {c.dataset.info.shape}, {recipe.path.name} path, "
              f"{recipe.objective.name} objective, {recipe.network.name} network, {recipe.sampler.name} sampler)")
    else:
        print(recipe.to_toml(), end="")
    return 0
