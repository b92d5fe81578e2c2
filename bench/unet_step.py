"""One UNet training step through fmcore against a hand-written PyTorch loop, and sampling throughput.

The recipe is examples/recipes/digits.toml (0.3M-parameter UNet, CondOT + CFM, Adam, EMA 0.999, batch 64),
with the per-pair conditional target on both sides.
fmcore's side is ``Trainer.train_step`` (data draw, objective, backward, optimiser, EMA: what ``fm train``
runs per step); the hand-written side does the same arithmetic on a copy of the same initial weights:
index the training tensor, ``x_t = t z + (1 - t) eps``, regress ``z - eps``, Adam, a foreach EMA lerp. Blocks
of steps alternate between the two in one process, so machine load hits both alike; the report is the
median over blocks of (fmcore time / hand time). Sampling: images per second for ``--samples`` images with
the recipe's sampler (Heun, 25 steps = 50 network evaluations), in one chunk of ``--sample-batch``.

    python bench/unet_step.py [--blocks 15] [--steps 10] [--samples 512] [--sample-batch 512]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch
from interleave import interleaved

from fmcore.plugins.loading import get_registry
from fmcore.recipe.recipe import load_recipe
from fmcore.run.sampling import generate
from fmcore.run.training import Trainer

RECIPE = Path(__file__).resolve().parent.parent / "examples" / "recipes" / "digits.toml"


class HandLoop:
    """The same step written directly in PyTorch."""

    def __init__(self, trainer: Trainer):
        o = trainer.o
        self.data = trainer.c.dataset.data
        self.net = copy.deepcopy(trainer.net)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=o.lr, betas=tuple(o.betas), foreach=True)
        self.batch, self.decay = o.batch_size, o.ema
        self.ema = [p.detach().clone() for p in self.net.parameters()]
        self.losses = torch.zeros(100)
        self.k = 0

    def step(self) -> None:
        z = self.data[torch.randint(self.data.shape[0], (self.batch,))]
        t = torch.rand(self.batch)
        eps = torch.randn_like(z)
        tt = t[:, None, None, None]
        loss = ((self.net(tt * z + (1 - tt) * eps, t) - (z - eps)) ** 2).mean()
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            torch._foreach_lerp_(self.ema, [p.detach() for p in self.net.parameters()], 1 - self.decay)
        self.losses[self.k % 100] = loss.detach()
        self.k += 1


def training_ratio(blocks: int, steps: int) -> tuple[float, float, float]:
    """(median ratio, fmcore ms/step, hand ms/step)."""
    registry = get_registry()
    # the per-pair target, as the hand-written loop computes (the recipe itself uses the stable target)
    recipe = load_recipe(RECIPE, registry, ["train.steps=1000000000", "objective.target=\"conditional\""])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(recipe, registry, Path(tmp) / "run")
        hand = HandLoop(trainer)
        trainer.model.train()
        return interleaved(trainer.train_step, hand.step, blocks, steps)


def sampling_rate(n: int, batch: int) -> tuple[float, int]:
    """(images per second, network evaluations per image) with the recipe's sampler and a fresh network."""
    from fmcore.recipe.build import build

    registry = get_registry()
    c = build(load_recipe(RECIPE, registry), registry)
    c.network.eval()
    generate(c.field(), c.sampler, 64, c.dataset.info.shape, batch_size=64)  # warm-up
    t0 = time.perf_counter()
    result = generate(c.field(), c.sampler, n, c.dataset.info.shape, batch_size=batch)
    return n / (time.perf_counter() - t0), result.nfe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=15)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--sample-batch", type=int, default=512)
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, recipe {RECIPE.name}")
    ratio, ours, theirs = training_ratio(args.blocks, args.steps)
    print(f"training step: fmcore {ours:.2f} ms, hand-written {theirs:.2f} ms, median ratio {ratio:.3f} "
          f"({args.blocks} blocks of {args.steps} steps)")
    rate, nfe = sampling_rate(args.samples, args.sample_batch)
    print(f"sampling: {rate:.1f} images/s ({args.samples} images, batch {args.sample_batch}, {nfe} network "
          "evaluations each)")


if __name__ == "__main__":
    main()
