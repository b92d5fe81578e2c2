"""``fm eval RUN_DIR``: distances between model samples and fresh data, beside their floors."""

from __future__ import annotations

import argparse
import json

import torch

from fmcore import api
from fmcore.cli.common import add_sampler_choice, positive_int, registry_of
from fmcore.cli.sample import check_sampler_overrides
from fmcore.core.noise import SOURCES
from fmcore.run.evaluate import evaluate
from fmcore.run.rundir import default_device


def add_parser(sub) -> argparse.ArgumentParser:
    e = sub.add_parser("eval", help="distances between model samples and fresh data")
    e.add_argument("run_dir")
    add_sampler_choice(e)
    e.add_argument("--n", type=positive_int, default=2000, help="samples on each side (exact W2 up to 5000)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    e.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    e.add_argument("--guidance", type=float, metavar="W",
                   help="image data, conditional models: guidance (default: the recipe's [sampler] guidance)")
    e.add_argument("--features", metavar="NAME", help="image data: feature network (default: the data set's name)")
    e.add_argument("--source", choices=SOURCES,
                   help="prior draws: 'sobol' reports the model sampled from scrambled Sobol points beside iid draws "
                   "(default: the recipe's [sampler] source)")
    return e


def run(args, host) -> int:
    check_sampler_overrides(args.set, "eval")
    run = api.load_run(args.run_dir, ema=not args.no_ema, overrides=args.set, sampler=args.sampler,
                       registry=registry_of(host))
    device = torch.device(args.device) if args.device else default_device()
    report = evaluate(run.opened, args.n, seed=args.seed, device=device, guidance=args.guidance,
                      features=args.features, source=args.source)
    print(json.dumps(report.values, indent=2) if args.json else report.render())
    return 0
