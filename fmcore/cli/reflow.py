"""``fm reflow RUN --pairs N --run-dir NEW [--distill]``: train a straighter (or one-step) flow on a trained
run's own (noise, endpoint) pairs (rectified flow; docs/couplings.md)."""

from __future__ import annotations

import argparse
import sys

from fmcore.cli.common import add_set, positive_int, registry_of, seed

REFLOW_SET = ("sampler.KEY=VALUE changes the sampler drawing the pairs; any other TABLE.KEY=VALUE the new run's "
              "recipe, e.g. --set sampler.steps=100 --set train.lr=1e-3")


def add_parser(sub) -> argparse.ArgumentParser:
    r = sub.add_parser("reflow", help="train a new run on a trained run's (noise, endpoint) pairs: reflow or "
                       "one-step distillation")
    r.add_argument("run_dir", help="the trained run whose flow makes the pairs")
    r.add_argument("--pairs", type=positive_int, required=True, help="number of (noise, endpoint) pairs to draw")
    r.add_argument("--run-dir", dest="new_dir", metavar="NEW", required=True,
                   help="the new run (its pairs in NEW/pairs); rerun the same command to continue it")
    r.add_argument("--distill", action="store_true",
                   help="train a one-step map (CondOT: v(eps, 0) regressed on endpoint - eps; sampled by one Euler "
                   "step) instead of a reflowed flow")
    r.add_argument("--steps", type=positive_int, help="training steps of the new run (default: the source run's)")
    r.add_argument("--init", action="store_true",
                   help="start the new run from the weights that draw the pairs ([train] init) instead of random "
                   "weights")
    r.add_argument("--sampler", help="sampler drawing the pairs (default: the run's; its options from defaults)")
    add_set(r, REFLOW_SET)
    r.add_argument("--seed", type=seed, default=0, help="seed of the pairs: pair i depends only on (seed, i)")
    r.add_argument("--chunk", type=positive_int, default=4096,
                   help="pairs per chunk file (a multiple of 64); an interrupted draw resumes at the first "
                   "missing chunk")
    r.add_argument("--no-ema", action="store_true", help="draw the pairs with the raw weights instead of the EMA")
    r.add_argument("--device", help="torch device drawing the pairs (default: cuda if available, else cpu)")
    r.add_argument("--skip-memory-check", action="store_true",
                   help="train even when the memory estimate exceeds what the device has")
    return r


def run(args, host) -> int:
    from tqdm.auto import tqdm

    from fmcore import api

    bar = tqdm(total=args.pairs, unit="pair", disable=None, file=sys.stderr, desc="pairs")
    result = api.reflow(args.run_dir, args.new_dir, args.pairs, distill=args.distill, steps=args.steps,
                        init=args.init, sampler=args.sampler, overrides=args.set, seed=args.seed, chunk=args.chunk,
                        device=args.device, ema=not args.no_ema, memory_check=not args.skip_memory_check,
                        registry=registry_of(host), progress=bar.update)
    bar.close()
    kept = result.pairs_total - result.pairs_drawn
    print(f"pairs: {result.pairs_drawn} drawn now" + (f", {kept} kept from before" if kept else "")
          + f" -> {result.run_dir / 'pairs'}")
    if result.train.main_process:
        what = "one-step (distilled)" if args.distill else "reflowed"
        print(f"{what} run trained {result.train.steps} steps, final loss {result.train.final_loss:.4g}; run "
              f"directory: {result.run_dir}")
    return 0
