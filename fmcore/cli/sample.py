"""``fm sample RUN_DIR --out x.npy``: samples from a trained run (any sampler, classes, guidance)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fmcore.cli.common import add_sampler_choice, positive_int, registry_of, save_npy, seed
from fmcore.core.errors import FmError


def add_parser(sub) -> argparse.ArgumentParser:
    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("run_dir")
    add_sampler_choice(s)
    s.add_argument("--n", "--num-samples", dest="n", type=positive_int, default=2000,
                   help="number of samples (default 2000); under torchrun write --num-samples (torchrun reads --n as "
                   "an abbreviation of its own options)")
    s.add_argument("--seed", type=seed, default=0, help="seed in 0 .. 2^32 - 1: sample i depends only on (seed, i)")
    s.add_argument("--batch-size", type=positive_int, default=4096, help="samples per chunk")
    s.add_argument("--out", required=True, help="output .npy file")
    s.add_argument("--plot", help="also write a picture (samples beside data, or an image grid)")
    s.add_argument("--trajectory", metavar="FILE.png", help="draw the paths of a few samples")
    s.add_argument("--trajectory-points", type=positive_int, default=64, help="how many paths to draw")
    s.add_argument("--path", metavar="NAME", help="sample along another Gaussian path (its default options) through "
                   "the exact schedule transform at matched signal-to-noise ratio (docs/fast-sampling.md)")
    s.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    s.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    s.add_argument("--class", dest="classes", metavar="K|K1,K2|all",
                   help="class-conditional samples of these classes, cycled (all: a balanced grid, one row per class)")
    s.add_argument("--guidance", type=float, metavar="W",
                   help="classifier-free guidance (0 unconditional, 1 conditional; default: the recipe's "
                   "[sampler] guidance)")
    s.add_argument("--skip-memory-check", action="store_true",
                   help="sample even when the memory estimate exceeds what the device has")
    return s


def check_sampler_overrides(overrides: list[str], command: str) -> None:
    for override in overrides:
        if not override.startswith("sampler."):
            raise FmError(f"--set {override!r}: fm {command} only changes sampler options (sampler.KEY=VALUE)")


def run(args, host) -> int:
    from fmcore import api
    from fmcore.run.distributed import launched, local_device
    from fmcore.run.rundir import resolve_device

    check_sampler_overrides(args.set, "sample")
    run = api.load_run(args.run_dir, ema=not args.no_ema, overrides=args.set, sampler=args.sampler,
                       registry=registry_of(host))
    device = resolve_device(args.device)
    with launched(device) as processes:  # several under torchrun: each draws its share of the noise blocks
        return sample(args, run, local_device(device, processes), processes)


def sample(args, run, device, processes) -> int:
    """Draw, write and report ``args.n`` samples of ``run`` (this process's share of them under torchrun)."""
    from tqdm.auto import tqdm

    from fmcore.recipe.build import blame
    from fmcore.run import plotting
    from fmcore.run.sampling import balanced_labels, generate, parse_classes

    c = run.components
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
    mine = processes.share(args.n)[1]
    bar = tqdm(total=mine, unit="sample", disable=None if mine > args.batch_size and processes.main else True,
               file=sys.stderr)
    with blame(f"{c.who('sampler')} on {c.who('network')}", "sampling"):
        result = generate(run.field(args.path), c.sampler, args.n, info.shape, seed=args.seed, device=device,
                          batch_size=args.batch_size, trajectory=args.trajectory_points if args.trajectory else 0,
                          labels=labels, null_label=info.null_label, guidance=guidance, progress=bar.update,
                          memory_check=not args.skip_memory_check, processes=processes)
    bar.close()
    seconds = time.perf_counter() - start
    if not processes.main:
        return 0  # the samples are the main process's to write
    samples = result.x.cpu()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_npy(out, samples.numpy())
    cond = "" if labels is None else f", classes {args.classes}, guidance {guidance:g}"
    cond += f", along path {args.path}" if args.path else ""
    nfe = f"{result.nfe} network evaluations each" if result.nfe_mean == result.nfe_max else \
        f"{result.nfe_mean:.1f} network evaluations per sample on average, at most {result.nfe_max}"
    spread = f" over {processes.world} processes" if processes.world > 1 else ""
    print(f"{args.n} samples with {run.recipe.sampler.name} ({nfe}, "
          f"weights {run.weights.name}{cond}) in {seconds:.2f}s{spread} -> {out}")
    if labels is not None:
        save_npy(out.with_name(out.stem + ".labels.npy"), labels.numpy())
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
