"""Training from an image folder held in memory against the same folder streamed from disk.

Writes ``--images`` random 32x32 RGB PNGs (10 class folders) once, then trains the same small UNet recipe
three ways, each in a fresh ``fm train`` process: in memory (every image decoded before step 1), streamed
(decoded in DataLoader workers), and streamed from the uint8 memory-mapped cache (built once, beforehand).
Reports the steps per second of the second half of the run (from metrics.jsonl), the peak resident memory
(RSS) of the training process, and the peak proportional set size (PSS: shared pages divided among the
processes that map them) summed over its whole process tree, workers included (polled every 50 ms with
psutil). ``--images`` smaller than the folder's count uses a fresh folder, to show that the streaming
process's memory does not grow with the data.

Because the modes run one after the other, machine load moves those numbers by tens of percent on a shared
machine; ``--interleaved`` instead builds the in-memory trainer and a streaming one in one process and times
their steps interleaved in blocks (bench/interleave.py), workers included, so that load affects both alike.

    python bench/streaming.py [--images 20000] [--steps 200] [--workers 2] [--folder DIR]
    python bench/streaming.py --interleaved [--blocks 3] [--block-steps 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

RECIPE = """
[data]
name = "image_folder"
path = "{folder}"
size = 32
stream = {stream}
cache = {cache}

[path]
name = "condot"

[objective]
name = "cfm"

[network]
name = "unet"
channels = 16
channel_mult = [1, 2, 2]
blocks_per_level = 1
attention_levels = []
num_classes = 10

[sampler]
name = "euler"
steps = 2

[train]
steps = {steps}
batch_size = 64
log_every = {log_every}
workers = {workers}
"""


def make_images(folder: Path, n: int) -> None:
    """``n`` random 32x32 RGB PNGs in 10 class folders (smooth noise, so they compress like images)."""
    from PIL import Image

    if folder.is_dir() and sum(1 for _ in folder.rglob("*.png")) == n:
        return
    rng = np.random.default_rng(0)
    for i in range(n):
        d = folder / f"class{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((32, 32), Image.Resampling.BILINEAR).save(d / f"{i:06d}.png")


def peak_memory(proc: subprocess.Popen) -> tuple[float, float]:
    """(peak RSS of the process, peak PSS summed over it and its children) in MiB, until it exits."""
    main_peak = tree_peak = 0
    p = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            rss = p.memory_info().rss
            tree = sum(q.memory_full_info().pss for q in (p, *p.children(recursive=True)))
        except psutil.Error:
            break
        main_peak, tree_peak = max(main_peak, rss), max(tree_peak, tree)
        time.sleep(0.05)
    return main_peak / 2**20, tree_peak / 2**20


def train(folder: Path, mode: str, steps: int, workers: int, tmp: Path) -> dict:
    stream, cache = {"memory": ("false", "false"), "stream": ("true", "false"), "cache": ("true", "true")}[mode]
    recipe = tmp / f"{mode}.toml"
    recipe.write_text(RECIPE.format(folder=folder, stream=stream, cache=cache, steps=steps, log_every=steps // 4,
                                    workers=workers))
    run = tmp / f"run-{mode}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "fmcore", "train", str(recipe), "--run-dir", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    main, tree = peak_memory(proc)
    _, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{mode}: fm train failed: {err.decode()[-2000:]}")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rate = float(np.mean([r["steps_per_s"] for r in rows[len(rows) // 2:]]))
    return {"mode": mode, "steps_per_s": rate, "rss_main_mib": main, "rss_tree_mib": tree,
            "wall_s": time.perf_counter() - start}


def interleaved_steps(folder: Path, workers: int, blocks: int, block_steps: int) -> None:
    """Median over blocks of (streaming step time / in-memory step time), for the lazily decoded folder and
    for the uint8 cache, in one process."""
    from interleave import interleaved

    from fmcore.plugins.loading import get_registry
    from fmcore.recipe.recipe import load_recipe
    from fmcore.run.training import Trainer

    registry = get_registry()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trainers = {}
        for mode in ("memory", "stream", "cache"):
            stream, cache = {"memory": ("false", "false"), "stream": ("true", "false"), "cache": ("true", "true")}[mode]
            recipe = tmp / f"{mode}.toml"
            recipe.write_text(RECIPE.format(folder=folder, stream=stream, cache=cache, steps=10**9, log_every=100,
                                            workers=workers))
            trainers[mode] = Trainer(load_recipe(str(recipe), registry), registry, tmp / mode)
            trainers[mode].model.train()
        print(f"interleaved, {blocks} blocks of {block_steps} steps, load {os.getloadavg()}")
        for mode in ("stream", "cache"):
            ratio, ours, theirs = interleaved(trainers[mode].train_step, trainers["memory"].train_step, blocks,
                                              block_steps, warmup=3)
            print(f"{mode:>8}: {ours:.1f} ms/step, in memory {theirs:.1f} ms/step, median ratio {ratio:.3f} "
                  f"(steps/s relative to in memory: {1 / ratio:.3f})")
        print(f"load {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--folder", help="default: fmcore-bench-images-N in the temporary folder")
    ap.add_argument("--modes", default="memory,stream,cache")
    ap.add_argument("--interleaved", action="store_true")
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--block-steps", type=int, default=30)
    args = ap.parse_args()
    folder = Path(args.folder or Path(tempfile.gettempdir()) / f"fmcore-bench-images-{args.images}")
    t0 = time.perf_counter()
    make_images(folder, args.images)
    print(f"{args.images} PNGs in {folder} ({time.perf_counter() - t0:.0f} s); load: {os.getloadavg()}")
    if args.interleaved:
        interleaved_steps(folder, args.workers, args.blocks, args.block_steps)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        from fmcore.plugins.loading import get_registry

        comp = get_registry().get("dataset", "image_folder")
        t0 = time.perf_counter()
        comp.cls(comp.options_class(path=str(folder), size=32, stream=True, cache=True))
        print(f"uint8 cache ready in {time.perf_counter() - t0:.0f} s")
        print(f"{'mode':>8} {'steps/s':>8} {'peak RSS main MiB':>18} {'peak PSS tree MiB':>18} {'wall s':>7}")
        results = [train(folder, mode, args.steps, args.workers, tmp) for mode in args.modes.split(",")]
        for r in results:
            print(f"{r['mode']:>8} {r['steps_per_s']:>8.2f} {r['rss_main_mib']:>18.0f} {r['rss_tree_mib']:>18.0f} "
                  f"{r['wall_s']:>7.0f}")
        base = {r["mode"]: r["steps_per_s"] for r in results}.get("memory")
        for r in results:
            if base and r["mode"] != "memory":
                print(f"{r['mode']} / memory steps per second: {r['steps_per_s'] / base:.3f}")
    print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
