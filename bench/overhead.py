"""fmcore's training step against a hand-written PyTorch loop doing the same arithmetic.

Both train the same MLP (CondOT + CFM on moons, Adam) from the same initial weights, in one process,
interleaved in blocks so that machine load affects both alike. Reports the median over blocks of
(fmcore time / hand-written time) for batch 256 and 4096, without and with EMA + logging; then the path call
alone (``path.sample`` and the objective's target, from given ``z, t, eps``) against the hand-written
``x = t z + (1 - t) eps; u = z - eps``.

    python bench/overhead.py [--blocks 15] [--steps 20]
"""

from __future__ import annotations

import argparse
import copy
import tempfile

import torch
from interleave import interleaved

from fmcore.plugins.loading import get_registry
from fmcore.recipe.recipe import recipe_from_dict
from fmcore.run.training import Trainer

RECIPE = {
    "data": {"name": "moons"},
    "path": {"name": "condot"},
    "objective": {"name": "cfm"},
    "network": {"name": "mlp", "hidden": [256, 256, 256]},
    "train": {"lr": 1e-3, "log_every": 100},
}


class HandLoop:
    """What a user would write by hand: sample data, t, eps; x_t = t z + (1 - t) eps; regress z - eps."""

    def __init__(self, trainer: Trainer, batch: int, ema: float):
        self.data = trainer.c.dataset
        self.net = copy.deepcopy(trainer.net)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3, foreach=True)
        self.batch = batch
        self.ema = [p.detach().clone() for p in self.net.parameters()] if ema else None
        self.decay = ema
        self.losses = torch.zeros(100)
        self.k = 0

    def step(self) -> None:
        z = self.data.sample(self.batch).x
        t = torch.rand(z.shape[0])
        eps = torch.randn_like(z)
        tt = t[:, None]
        x = tt * z + (1 - tt) * eps
        loss = ((self.net(x, t) - (z - eps)) ** 2).mean()
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(self.ema, [p.detach() for p in self.net.parameters()], 1 - self.decay)
            self.losses[self.k % 100] = loss.detach()
            self.k += 1


def measure(batch: int, ema: float, blocks: int, steps: int) -> tuple[float, float, float]:
    """(median ratio, fmcore ms/step, hand ms/step)."""
    raw = copy.deepcopy(RECIPE)
    raw["train"].update(batch_size=batch, ema=ema, steps=10**9)
    registry = get_registry()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(recipe_from_dict(raw, registry), registry, tmp)
        hand = HandLoop(trainer, batch, ema)
        trainer.model.train()
        return interleaved(trainer.train_step, hand.step, blocks, steps)


def measure_path(batch: int, blocks: int, steps: int) -> tuple[float, float, float]:
    """(median ratio, fmcore us/call, hand us/call) of the path call alone: ``x_t`` and the CFM target."""
    registry = get_registry()
    recipe = recipe_from_dict(copy.deepcopy(RECIPE), registry)
    with tempfile.TemporaryDirectory() as tmp:
        c = Trainer(recipe, registry, tmp).c
    path, objective = c.path, c.objective
    z, eps, t = torch.randn(batch, 2), torch.randn(batch, 2), torch.rand(batch)

    def ours():
        ps = path.sample(z, t, eps)
        return ps.x, objective.target(ps, path)

    def hand():
        tt = t[:, None]
        return tt * z + (1 - tt) * eps, z - eps

    ratio, a, b = interleaved(ours, hand, blocks, steps * 50)
    return ratio, 1e3 * a, 1e3 * b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=15)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'batch':>6} {'ema+log':>8} {'fmcore ms':>10} {'hand ms':>9} {'median ratio':>13}")
    for ema in (0.0, 0.999):
        for batch in (256, 4096):
            ratio, ours, theirs = measure(batch, ema, args.blocks, args.steps)
            print(f"{batch:>6} {'yes' if ema else 'no':>8} {ours:>10.3f} {theirs:>9.3f} {ratio:>13.3f}")
    print(f"path call alone (sample + target)\n{'batch':>6} {'fmcore us':>10} {'hand us':>9} {'median ratio':>13}")
    for batch in (256, 4096):
        ratio, ours, theirs = measure_path(batch, args.blocks, args.steps)
        print(f"{batch:>6} {ours:>10.2f} {theirs:>9.2f} {ratio:>13.3f}")


if __name__ == "__main__":
    main()
