"""``fm train RECIPE [--set ...] [--run-dir DIR]`` and ``fm train --resume RUN_DIR``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fmcore.cli.common import add_set, registry_of
from fmcore.core.errors import FmError


def add_parser(sub) -> argparse.ArgumentParser:
    t = sub.add_parser("train", help="train a recipe into a run directory")
    t.add_argument("recipe", nargs="?", help="recipe TOML file")
    add_set(t)
    t.add_argument("--run-dir", help="where to write the run (default: runs/<recipe>-<time>)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its newest complete checkpoint")
    t.add_argument("--skip-memory-check", action="store_true",
                   help="train even when the memory estimate exceeds what the device has")
    return t


def run(args, host) -> int:
    from fmcore import api  # the API pulls in accelerate, scipy and matplotlib: only when a command needs them
    from fmcore.run.rundir import RECIPE

    registry = registry_of(host)
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / RECIPE).is_file():
            raise FmError(f"cannot resume {str(run_dir)!r}: it is not an fmcore run directory (no {RECIPE})")
        recipe = api.load_recipe(run_dir / RECIPE, args.set, registry=registry)
    else:
        if args.recipe is None:
            raise FmError("fm train needs a RECIPE file (or --resume RUN_DIR)")
        recipe = api.load_recipe(args.recipe, args.set, registry=registry)
        run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / (
            f"{Path(args.recipe).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    result = api.train(recipe, run_dir, resume=bool(args.resume), registry=registry,
                       memory_check=not args.skip_memory_check)
    if not result.main_process:
        return 0
    print(f"trained {result.steps} steps, final loss {result.final_loss:.4g}; run directory: {result.run_dir}")
    print(f"samples beside data: {result.run_dir / 'samples.png'}")
    return 0
