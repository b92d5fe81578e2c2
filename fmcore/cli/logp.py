"""``fm logp RUN_DIR --points x.npy --out logp.npy``: per-point log-densities (nats) of a run's model."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fmcore.cli.common import positive_int, registry_of, save_npy
from fmcore.core.errors import FmError
from fmcore.core.likelihood import LikelihoodOptions

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def add_likelihood_args(p: argparse.ArgumentParser) -> None:
    """The options of the likelihood computation (fm logp, fm eval --nll; both also have --seed)."""
    d = LikelihoodOptions()
    p.add_argument("--divergence", choices=("auto", "exact", "hutchinson"), default=d.divergence,
                   help="exact (a backward pass per dimension) or Hutchinson's estimate; auto: exact up to 32 "
                   "dimensions")
    p.add_argument("--probes", type=positive_int, default=d.probes, help="Hutchinson probes per point (default 4)")
    p.add_argument("--probe", choices=("rademacher", "gaussian"), default=d.probe, help="Hutchinson probe law")
    p.add_argument("--solver", choices=("dopri5", "rk4"), default=d.solver, help="ODE solver (default dopri5)")
    p.add_argument("--rtol", type=float, default=d.rtol, help="dopri5 relative tolerance (default 1e-5)")
    p.add_argument("--atol", type=float, default=d.atol, help="dopri5 absolute tolerance (default 1e-5)")
    p.add_argument("--steps", type=positive_int, default=d.steps, help="rk4 steps (default 100)")
    p.add_argument("--max-steps", type=positive_int, default=d.max_steps, help="dopri5 step budget per point")
    p.add_argument("--batch-size", type=positive_int, default=1024, help="points per chunk")
    p.add_argument("--dtype", choices=tuple(DTYPES), help="compute in this dtype (default: the network's)")


def likelihood_options(args) -> LikelihoodOptions:
    for name in ("rtol", "atol"):
        if not getattr(args, name) > 0:
            raise FmError(f"--{name} {getattr(args, name)}: expected a number > 0")
    return LikelihoodOptions(divergence=args.divergence, probes=args.probes, probe=args.probe, solver=args.solver,
                             rtol=args.rtol, atol=args.atol, max_steps=args.max_steps, steps=args.steps,
                             seed=args.seed)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("logp", help="log-densities of points under a run's model (probability-flow ODE)")
    p.add_argument("run_dir")
    p.add_argument("--points", required=True, help=".npy file of points [N, *shape]")
    p.add_argument("--labels", help="class-conditional models: .npy file of integer labels [N]")
    p.add_argument("--out", required=True, help="output .npy file of log-densities [N] in nats (a Hutchinson "
                   "run also writes OUT.stderr.npy)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Hutchinson probes")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    add_likelihood_args(p)
    return p


def load_array(path: str, what: str) -> np.ndarray:
    file = Path(path)
    if file.suffix != ".npy" or not file.is_file():
        raise FmError(f"{what} {path!r}: expected an existing .npy file")
    try:
        return np.load(file, allow_pickle=False)
    except ValueError as exc:
        raise FmError(f"{what} {path!r} holds Python objects, which would need unpickling; fmcore refuses that "
                      f"(save a numeric array): {exc}") from None


def run(args, host) -> int:
    from tqdm.auto import tqdm

    from fmcore import api
    from fmcore.run.rundir import resolve_device

    options = likelihood_options(args)
    run = api.load_run(args.run_dir, ema=not args.no_ema, registry=registry_of(host))
    points = load_array(args.points, "--points")
    if not np.issubdtype(points.dtype, np.number) or points.ndim < 2:
        raise FmError(f"--points {args.points!r} holds {points.dtype} of shape {points.shape}; expected numbers "
                      f"[N, *shape]")
    labels = None if args.labels is None else torch.from_numpy(load_array(args.labels, "--labels").astype(np.int64))
    device = resolve_device(args.device)
    start = time.perf_counter()
    bar = tqdm(total=points.shape[0], unit="point", disable=None, file=sys.stderr)
    result = run.logp(torch.from_numpy(points.astype(np.float64)), labels=labels, device=device,
                      batch_size=args.batch_size, dtype=DTYPES.get(args.dtype), progress=bar.update,
                      options=options)
    bar.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    logp = result.logp.detach().double().cpu().numpy()
    save_npy(out, logp)
    extra = ""
    if result.divergence == "hutchinson":
        err_path = out.with_name(out.stem + ".stderr.npy")
        save_npy(err_path, result.stderr.double().cpu().numpy())
        extra = f"; standard errors -> {err_path}"
    print(f"{len(logp)} log-densities at t = {result.t:g} ({result.divergence} divergence, {options.solver}, "
          f"{float(result.nfe.double().mean()):.1f} evaluations per point on average, at most {int(result.nfe.max())})"
          f" in {time.perf_counter() - start:.2f}s: mean {logp.mean():.4f} nats -> {out}{extra}")
    return 0
