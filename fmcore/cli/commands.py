"""The ``fm`` command line: thin commands over library calls.

Every user error is one paragraph on stderr and exit code 2 (never a traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fmcore.core.errors import FmError
from fmcore.plugins.loading import default_host
from fmcore.plugins.registry import KINDS


def _registry():
    host = default_host()
    registry = host.registry()
    host.warn_broken()
    return registry


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


# -- commands ----------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from fmcore.recipe.recipe import load_recipe
    from fmcore.run.rundir import RECIPE
    from fmcore.run.training import train

    registry = _registry()
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / RECIPE).is_file():
            raise FmError(f"cannot resume {str(run_dir)!r}: it is not an fmcore run directory (no {RECIPE})")
        recipe = load_recipe(run_dir / RECIPE, registry, args.set)
    else:
        if args.recipe is None:
            raise FmError("fm train needs a RECIPE file (or --resume RUN_DIR)")
        recipe = load_recipe(args.recipe, registry, args.set)
        run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / (
            f"{Path(args.recipe).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    result = train(recipe, registry, run_dir, resume=bool(args.resume))
    if not result.main_process:
        return 0
    print(f"trained {result.steps} steps, final loss {result.final_loss:.4g}; run directory: {result.run_dir}")
    print(f"samples beside data: {result.run_dir / 'samples.png'}")
    return 0


def cmd_sample(args) -> int:
    from tqdm.auto import tqdm

    from fmcore.core.oracle import bind_network
    from fmcore.run import plotting
    from fmcore.run.rundir import default_device, open_run
    from fmcore.run.sampling import balanced_labels, generate, parse_classes

    for override in args.set:
        if not override.startswith("sampler."):
            raise FmError(f"--set {override!r}: fm sample only changes sampler options (sampler.KEY=VALUE)")
    run = open_run(args.run_dir, _registry(), ema=not args.no_ema, overrides=args.set, sampler=args.sampler)
    c = run.components
    bind_network(c)
    device = torch.device(args.device) if args.device else default_device()
    c.network.to(device)
    info, labels, guidance = c.network.info, None, args.guidance
    if args.classes is not None:
        try:
            labels = balanced_labels(args.n, parse_classes(args.classes, info.num_classes))
        except ValueError as exc:
            raise FmError(str(exc)) from None
        guidance = getattr(c.sampler.options, "guidance", 1.0) if guidance is None else guidance
    elif guidance is not None:
        raise FmError("--guidance needs --class (K, a list like 1,3, or all): guidance mixes class-conditional and "
                      "unconditional predictions")
    start = time.perf_counter()
    bar = tqdm(total=args.n, unit="sample", disable=None if args.n > args.batch_size else True, file=sys.stderr)
    result = generate(c.field(), c.sampler, args.n, info.shape, seed=args.seed, device=device,
                      batch_size=args.batch_size, trajectory=args.trajectory_points if args.trajectory else 0,
                      labels=labels, null_label=info.null_label, guidance=guidance, progress=bar.update)
    bar.close()
    seconds = time.perf_counter() - start
    samples = result.x.cpu()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, samples.numpy())
    cond = "" if labels is None else f", classes {args.classes}, guidance {guidance:g}"
    print(f"{args.n} samples with {run.recipe.sampler.name} ({result.nfe} network evaluations each, "
          f"weights {run.weights.name}{cond}) in {seconds:.2f}s -> {out}")
    if labels is not None:
        np.save(out.with_name(out.stem + ".labels.npy"), labels.numpy())
        print(f"labels: {out.with_name(out.stem + '.labels.npy')}")
    if args.plot:
        data = c.dataset.reference(min(args.n, 5000), seed=args.seed + 1).x
        plotting.save_preview(samples, data, Path(args.plot), title=f"{run.recipe.sampler.name}, seed {args.seed}"
                              + cond, labels=labels)
        print(f"picture: {args.plot}")
    if args.trajectory:
        plotting.trajectories(result.trajectory.cpu(), Path(args.trajectory))
        print(f"trajectories: {args.trajectory}")
    return 0


def cmd_eval(args) -> int:
    from fmcore.run.evaluate import evaluate
    from fmcore.run.rundir import default_device, open_run

    run = open_run(args.run_dir, _registry(), ema=not args.no_ema)
    device = torch.device(args.device) if args.device else default_device()
    result = evaluate(run, args.n, seed=args.seed, device=device, guidance=args.guidance, features=args.features)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    if "nn_ratio" in result:
        from fmcore.core.features import print_image_report

        print_image_report(result, f"{run.directory} ({run.weights.name}, sampler {run.recipe.sampler.name})")
        return 0
    print(f"{run.directory} ({run.weights.name}, sampler {run.recipe.sampler.name}), n = {args.n}")
    print(f"{'metric':<18}{'model vs data':>16}{'data vs data':>16}{'ratio':>10}")
    for key in ("w2", "energy"):
        if key in result:
            floor = result[f"{key}_floor"]
            ratio = result[key] / floor if floor > 0 else float("nan")
            print(f"{key:<18}{result[key]:>16.4f}{floor:>16.4f}{ratio:>10.3f}")
    return 0


def cmd_plugins(args) -> int:
    host = default_host()
    registry = host.registry()
    records = sorted(host.records.values(), key=lambda r: r.name)
    if args.json:
        kinds = {kind: [{"name": c.name, "package": c.package, "version": c.version, "help": c.help}
                        for c in registry.components(kind)] for kind in KINDS}
        broken = [{"plugin": r.name, "package": r.package, "version": r.version, "error": r.error}
                  for r in records if r.error]
        print(json.dumps({"components": kinds, "broken": broken}, indent=2))
        return 0
    for kind in KINDS:
        comps = registry.components(kind)
        print(f"{kind}s:")
        for c in comps:
            print(f"  {c.name:<16} {c.package} {c.version:<8} {c.help}")
        if not comps:
            print("  (none)")
    broken = [r for r in records if r.error]
    if broken:
        print("broken plugins:")
        for r in broken:
            print(f"  {r.name} ({r.package} {r.version}): {r.error}")
    return 0


def cmd_recipe(args) -> int:
    from fmcore.recipe.build import build
    from fmcore.recipe.recipe import load_recipe

    registry = _registry()
    if args.recipe_command == "schema":
        from fmcore.recipe.schema import print_schema

        print_schema(registry, args.kind, args.name, as_json=args.json)
        return 0
    recipe = load_recipe(args.recipe, registry, args.set)
    if args.recipe_command == "check":
        c = build(recipe, registry)
        print(f"{args.recipe}: ok ({recipe.data.name} data {c.dataset.info.shape}, {recipe.path.name} path, "
              f"{recipe.objective.name} objective, {recipe.network.name} network, {recipe.sampler.name} sampler)")
    else:
        print(recipe.to_toml(), end="")
    return 0


# -- parser ------------------------------------------------------------------------------------------
def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fm", description="fmcore: flow matching and diffusion models from recipes")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    set_help = "override a recipe value, e.g. --set train.steps=200 --set network.hidden=[128,128]"

    t = sub.add_parser("train", help="train a recipe into a run directory")
    t.add_argument("recipe", nargs="?", help="recipe TOML file")
    t.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE", help=set_help)
    t.add_argument("--run-dir", help="where to write the run (default: runs/<recipe>-<time>)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its newest complete checkpoint")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("run_dir")
    s.add_argument("--sampler", help="use another sampler (its options start from their defaults)")
    s.add_argument("--set", action="append", default=[], metavar="sampler.KEY=VALUE", help="sampler option")
    s.add_argument("--n", type=_positive_int, default=2000, help="number of samples (default 2000)")
    s.add_argument("--seed", type=int, default=0, help="seed: sample i depends only on (seed, i)")
    s.add_argument("--batch-size", type=_positive_int, default=4096, help="samples per chunk")
    s.add_argument("--out", required=True, help="output .npy file")
    s.add_argument("--plot", help="also write a picture (samples beside data, or an image grid)")
    s.add_argument("--trajectory", metavar="FILE.png", help="draw the paths of a few samples")
    s.add_argument("--trajectory-points", type=_positive_int, default=64, help="how many paths to draw")
    s.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    s.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    s.add_argument("--class", dest="classes", metavar="K|K1,K2|all",
                   help="class-conditional samples of these classes, cycled (all: a balanced grid, one row per class)")
    s.add_argument("--guidance", type=float, metavar="W",
                   help="classifier-free guidance (0 unconditional, 1 conditional; default: the recipe's "
                   "[sampler] guidance)")
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("eval", help="distances between model samples and fresh data")
    e.add_argument("run_dir")
    e.add_argument("--n", type=_positive_int, default=2000, help="samples on each side (exact W2 up to 5000)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    e.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    e.add_argument("--guidance", type=float, metavar="W",
                   help="image data, conditional models: guidance (default: the recipe's [sampler] guidance)")
    e.add_argument("--features", metavar="NAME", help="image data: feature network (default: the data set's name)")
    e.set_defaults(func=cmd_eval)

    pl = sub.add_parser("plugins", help="list installed components and broken plugins")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=cmd_plugins)

    r = sub.add_parser("recipe", help="check, show or document recipes")
    rsub = r.add_subparsers(dest="recipe_command", required=True, metavar="SUBCOMMAND")
    for name, what in (("check", "validate a recipe and build its components, without training"),
                       ("show", "print the resolved recipe with every default filled in")):
        q = rsub.add_parser(name, help=what)
        q.add_argument("recipe")
        q.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE", help=set_help)
    sc = rsub.add_parser("schema", help="list component options with types, defaults and help")
    sc.add_argument("kind", nargs="?")
    sc.add_argument("name", nargs="?")
    sc.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_recipe)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except FmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (e.g. `fm plugins | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def entry() -> None:
    sys.exit(main())

