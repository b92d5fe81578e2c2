"""How the Fréchet comparison's set sizes decide whether a digits model scores "below the floor".

    python bench/digits_frechet.py RUN_DIR [--seeds 0 1 2]

For a run trained on ``digits``, draws 1,797 samples per seed (as many as there are digits images) and reports,
in the cached digits classifier's feature space (fmcore.run.features):

- unequal sizes: all 1,797 samples against all 1,797 images, beside the floor between two random halves of the
  images (898 against 899);
- equal sizes: 898 samples against one half, beside the other half against it (the same reference and sizes);
- ``fm eval --n 3000``'s comparison: two chunks of 1,438 samples against the 359 held-out images, beside the
  1,438 training images against them (fmcore.run.features.evaluate_images).

The Fréchet distance of finite sets is biased upwards by roughly ``tr(S) (1/n_a + 1/n_b)``, so the first comparison
favours the model (two sets of 1,797 against two of about 900) whatever the model; only the equal-size ones say
whether samples are as close to the data as real images are.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from fmcore.plugins.loading import get_registry
from fmcore.run.features import evaluate_images, frechet_distance
from fmcore.run.rundir import open_run
from fmcore.run.sampling import generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    registry = get_registry()
    run = open_run(args.run_dir, registry)
    c = run.components
    comp = registry.get("feature", "digits")
    features = comp.cls(comp.options_class())
    images = torch.cat([c.dataset.data, c.dataset.held_out.x])
    f_images = features.features_and_logits(images)[0]
    rows = []
    for seed in args.seeds:
        x = generate(c.field(), c.sampler, images.shape[0], c.network.info.shape, seed=seed, batch_size=1024).x
        f_x = features.features_and_logits(x.float())[0]
        perm = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))
        half_a, half_b = f_images[perm[: images.shape[0] // 2]], f_images[perm[images.shape[0] // 2:]]
        halves = frechet_distance(half_a, half_b)  # the floor of both half-based comparisons
        report = evaluate_images(run, 3000, seed=seed)
        rows.append([frechet_distance(f_x, f_images), halves, frechet_distance(f_x[: half_a.shape[0]], half_b), halves,
                     report["fd"], report["fd_floor"]])
        print(f"seed {seed}: " + ", ".join(f"{v:.2f}" for v in rows[-1]), flush=True)
    mean = np.mean(rows, axis=0)
    print(f"\n{args.run_dir}, seeds {args.seeds} (means)\n")
    print("| comparison | model | floor | ratio |")
    print("|---|---|---|---|")
    for label, (m, f) in zip(["1,797 samples vs all 1,797 images; floor: half vs half",
                              "898 samples vs half B; floor: half A vs half B",
                              "fm eval --n 3000: 2 x 1,438 samples vs 359 held-out; floor: 1,438 training images"],
                             [mean[0:2], mean[2:4], mean[4:6]], strict=True):
        print(f"| {label} | {m:.2f} | {f:.2f} | {m / f:.2f} |")


if __name__ == "__main__":
    main()
