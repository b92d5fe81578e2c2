"""``fm oracle RECIPE --run-dir DIR``: a run whose network is the exact field of the recipe's data."""

from __future__ import annotations

import argparse

from fmcore.cli.common import add_set, registry_of


def add_parser(sub) -> argparse.ArgumentParser:
    o = sub.add_parser("oracle", help="make a run whose network is the exact field of the recipe's data")
    o.add_argument("recipe", help="recipe TOML file (its [network] is replaced by the exact field)")
    o.add_argument("--run-dir", required=True, help="where to write the run")
    add_set(o)
    return o


def run(args, host) -> int:
    from fmcore import api  # the API pulls in accelerate, scipy and matplotlib: only when a command needs them

    registry = registry_of(host)
    recipe = api.load_recipe(args.recipe, args.set, registry=registry)
    out = api.make_oracle_run(recipe, args.run_dir, registry=registry).directory
    print(f"exact-field run: {out} (fm sample {out} --out samples.npy; fm eval {out})")
    return 0
