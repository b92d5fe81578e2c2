"""``fm eval RUN_DIR``: distances between model samples and fresh data, beside their floors."""

from __future__ import annotations

import argparse
import json
import sys

from fmcore.cli.common import add_sampler_choice, positive_int, registry_of, seed
from fmcore.cli.logp import DTYPES, add_likelihood_args, likelihood_options
from fmcore.cli.sample import check_sampler_overrides
from fmcore.core.errors import FmError
from fmcore.core.noise import SOURCES


def add_parser(sub) -> argparse.ArgumentParser:
    e = sub.add_parser("eval", help="distances between model samples and fresh data")
    e.add_argument("run_dir")
    add_sampler_choice(e)
    e.add_argument("--n", "--num-samples", dest="n", type=positive_int, default=2000,
                   help="samples on each side (exact W2 up to 5000); under torchrun write --num-samples")
    e.add_argument("--seed", type=seed, default=0, help="seed in 0 .. 2^32 - 1")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    e.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    e.add_argument("--guidance", type=float, metavar="W",
                   help="image data, conditional models: guidance (default: the recipe's [sampler] guidance)")
    e.add_argument("--features", metavar="NAME", help="image data: feature network (default: the data set's name)")
    e.add_argument("--source", choices=SOURCES,
                   help="prior draws: 'sobol' reports the model sampled from scrambled Sobol points beside iid draws "
                   "(default: the recipe's [sampler] source)")
    nll = e.add_argument_group("likelihood (--nll)")
    nll.add_argument("--nll", action="store_true", help="report the held-out NLL (nats, bits/dim) beside a fitted "
                     "Gaussian instead of sample distances (probability-flow ODE; docs/likelihood.md)")
    add_likelihood_args(nll)
    return e


def run(args, host) -> int:
    if args.nll:
        return run_nll(args, host)

    from fmcore import api
    from fmcore.run.distributed import launched, local_device
    from fmcore.run.evaluate import evaluate
    from fmcore.run.rundir import resolve_device

    check_sampler_overrides(args.set, "eval")
    run = api.load_run(args.run_dir, ema=not args.no_ema, overrides=args.set, sampler=args.sampler,
                       registry=registry_of(host))
    device = resolve_device(args.device)
    with launched(device) as processes:  # several under torchrun: each draws its share of the samples
        report = evaluate(run.opened, args.n, seed=args.seed, device=local_device(device, processes),
                          guidance=args.guidance, features=args.features, source=args.source, processes=processes)
    if processes.main:
        print(json.dumps(report.values, indent=2) if args.json else report.render())
    return 0


def run_nll(args, host) -> int:
    from tqdm.auto import tqdm

    from fmcore import api
    from fmcore.run.rundir import resolve_device

    if args.sampler or args.set or args.guidance is not None or args.features:
        raise FmError("--nll computes log-densities with the probability-flow ODE (its own options: --divergence, "
                      "--probes, --solver, --rtol, --atol, ...); --sampler, --set, --guidance and --features do not "
                      "apply to it")

    options = likelihood_options(args)
    run = api.load_run(args.run_dir, ema=not args.no_ema, registry=registry_of(host))
    device = resolve_device(args.device)
    bar = tqdm(total=args.n, unit="point", disable=None, file=sys.stderr)
    report = run.nll(args.n, seed=args.seed, device=device, batch_size=args.batch_size, dtype=DTYPES.get(args.dtype),
                     progress=bar.update, options=options)
    bar.close()
    print(json.dumps(report.values, indent=2) if args.json else report.render())
    return 0
