"""Reflow and one-step distillation on moons: W2 at Euler NFE 1, 2, 4 (and 100) before and after, and the
straightness of the trajectories.

    python bench/reflow.py [--seeds 0 1 2] [--steps 3000] [--pairs 20000] [--out runs/bench_reflow] [--img docs/img]
                           [--init] [--new-steps N]

Per seed: (1) the original run, examples/recipes/moons.toml (CondOT, CFM with the stable target, MLP 3 x 256,
batch 512, Adam 2e-3, cosine, EMA 0.999) for ``--steps`` steps; (2) ``fmcore.reflow`` with ``--pairs`` pairs
drawn by its sampler (Euler, 100 steps), a reflowed run trained for the same number of steps; (3) the same
pairs (the folder is copied, so the rerun draws nothing) distilled to a one-step map (``distill=True``, same
steps). ``--init``: the reflowed and distilled runs start from the original's weights (``[train] init``) instead
of random ones; ``--new-steps N``: they train N steps instead of ``--steps``. Each model is sampled with Euler
from the Sobol source (seed 11, 2,000 samples) and compared with 2,000 fresh data points by exact W2 (floor:
two fresh data sets). Straightness: ``E int ||v - (x1 - x0)||^2 dt`` on Euler-100 trajectories of the 2,000
samples (fmcore.run.metrics.straightness).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import torch

import fmcore
from fmcore.core.noise import BatchNoise
from fmcore.run.metrics import straightness, wasserstein2
from fmcore.run.sampling import generate

RECIPE = Path(__file__).resolve().parent.parent / "examples" / "recipes" / "moons.toml"
NFES = (1, 2, 4, 100)
N = 2000


def euler(steps: int):
    return fmcore.choice("sampler", "euler", steps=steps, source="sobol").create()


def measure(run_dir: Path, data: torch.Tensor, nfes=NFES, paths: bool = True) -> dict:
    run = fmcore.load_run(run_dir)
    field = run.field()
    out = {}
    for nfe in nfes:
        x = generate(field, euler(nfe), N, (2,), seed=11).x
        out[f"w2_nfe{nfe}"] = wasserstein2(x, data)
    if not paths:  # a distilled network is trained at t = 0 only: it has no paths to measure
        return out
    sampler = euler(100)
    noise = BatchNoise(11, 0, N, (2,), "cpu", source="sobol")
    with torch.no_grad():
        result = sampler.run(field, field.path.prior_sample(noise.prior()), noise, trajectory=True)
    out["straightness"] = straightness(result.trajectory, sampler.grid(field, "cpu"))
    return out


def one_seed(seed: int, steps: int, pairs: int, out: Path, data: torch.Tensor, init: bool = False,
             new_steps: int | None = None) -> dict:
    base = out / f"seed{seed}"
    shutil.rmtree(base, ignore_errors=True)
    sets = [f"train.seed={seed}", f"train.steps={steps}"]
    rows = {}
    t0 = time.perf_counter()
    fmcore.train(fmcore.load_recipe(RECIPE, sets), base / "original")
    rows["original"] = {"train_s": time.perf_counter() - t0, **measure(base / "original", data)}
    t0 = time.perf_counter()
    new = {"steps": new_steps or steps, "seed": seed, "init": init}
    result = fmcore.reflow(base / "original", base / "reflow", pairs, **new)
    rows["reflow"] = {"pairs_and_train_s": time.perf_counter() - t0, "pairs_drawn": result.pairs_drawn,
                      **measure(base / "reflow", data)}
    (base / "distill").mkdir()
    shutil.copytree(base / "reflow" / "pairs", base / "distill" / "pairs")
    t0 = time.perf_counter()
    result = fmcore.reflow(base / "original", base / "distill", pairs, distill=True, **new)
    rows["distill"] = {"train_s": time.perf_counter() - t0, "pairs_drawn": result.pairs_drawn,
                       **measure(base / "distill", data, nfes=(1,), paths=False)}
    for name, row in rows.items():
        print(json.dumps({"seed": seed, "model": name, **row}), flush=True)
    return rows


def pictures(out: Path, seed: int, data: torch.Tensor, img: Path) -> None:
    """Trajectories (Euler 100) of the original and the reflowed run, and one-step samples of all three."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(20, 4.4))
    for ax, name in zip(axes[:2], ("original", "reflow"), strict=True):
        field = fmcore.load_run(out / f"seed{seed}" / name).field()
        noise = BatchNoise(11, 0, 256, (2,), "cpu", source="sobol")
        with torch.no_grad():
            traj = euler(100).run(field, noise.prior(), noise, trajectory=True).trajectory[:, :64]
        ax.scatter(*data[:1000].T, s=2, c="0.8")
        ax.plot(traj[..., 0].numpy(), traj[..., 1].numpy(), lw=0.7, c="tab:blue", alpha=0.8)
        ax.scatter(*traj[0].T, s=5, c="k")
        ax.set_title(f"{name}: Euler-100 paths (noise: black)")
    for ax, name in zip(axes[2:], ("original", "reflow", "distill"), strict=True):
        x = generate(fmcore.load_run(out / f"seed{seed}" / name).field(), euler(1), N, (2,), seed=11).x
        ax.scatter(*data.T, s=2, c="0.75", label="data")
        ax.scatter(*x.T, s=2, c="tab:red", label="1 Euler step")
        ax.set_title(f"{name}: one Euler step (NFE 1)")
        ax.legend(loc="lower left", markerscale=4)
    for ax in axes:
        ax.set_xlim(-5, 7)
        ax.set_ylim(-4, 4)
        ax.set_aspect("equal")
    fig.tight_layout()
    img.mkdir(parents=True, exist_ok=True)
    fig.savefig(img / "reflow_moons.png", dpi=72)


def summary(all_rows: list[dict]) -> None:
    def ms(values):
        return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else \
            f"{values[0]:.3f}"

    print("| model | W2 NFE 1 | NFE 2 | NFE 4 | NFE 100 | straightness |")
    print("|---|---|---|---|---|---|")
    for name in ("original", "reflow", "distill"):
        cells = [ms([r[name][f"w2_nfe{k}"] for r in all_rows]) if f"w2_nfe{k}" in all_rows[0][name] else "-"
                 for k in NFES]
        bent = ms([r[name]["straightness"] for r in all_rows]) if "straightness" in all_rows[0][name] else "-"
        print(f"| {name} | " + " | ".join(cells) + f" | {bent} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_reflow"))
    ap.add_argument("--img", type=Path, help="write the pictures of the first seed here (e.g. docs/img)")
    ap.add_argument("--init", action="store_true", help="reflow and distill from the original's weights")
    ap.add_argument("--new-steps", type=int,
                    help="training steps of the reflowed and distilled runs (default: --steps)")
    args = ap.parse_args()
    ds = fmcore.choice("dataset", "moons").create()
    data, data2 = ds.reference(N, seed=1_000_003).x, ds.reference(N, seed=2_000_003).x
    print(json.dumps({"w2_floor": wasserstein2(data, data2), "threads": torch.get_num_threads()}), flush=True)
    rows = [one_seed(seed, args.steps, args.pairs, args.out, data, args.init, args.new_steps) for seed in args.seeds]
    summary(rows)
    if args.img:
        pictures(args.out, args.seeds[0], data, args.img)


if __name__ == "__main__":
    main()
