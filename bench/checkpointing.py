"""Activation checkpointing in the UNet: the activations kept for the backward pass, and the step time.

The digits UNet of examples/recipes/digits.toml and a larger 32x32 RGB one, batch 64, with and without
``checkpointing = true``: bytes of the tensors autograd saves for backward (counted exactly with
``torch.autograd.graph.saved_tensors_hooks``, summed over one forward pass) and the median time of a
forward + backward pass, interleaved (bench/interleave.py).

    python bench/checkpointing.py [--blocks 7] [--steps 5]
"""

from __future__ import annotations

import argparse

import torch
from interleave import interleaved

from fmcore.core.network import DataInfo
from fmcore.plugins.loading import get_registry

CASES = {
    "digits": (dict(channels=16, channel_mult=[1, 2, 2], blocks_per_level=1, attention_levels=[1]), (1, 8, 8)),
    "rgb32": (dict(channels=32, channel_mult=[1, 2, 2], blocks_per_level=1, attention_levels=[1]), (3, 32, 32)),
}


def saved_bytes(net, x, t) -> int:
    """Bytes of every tensor autograd saves during one forward pass (storage counted once per tensor)."""
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        (net(x, t) ** 2).mean().backward()
    return total


def step(net, x, t):
    """One forward and backward pass of ``net``, as a callable."""
    return lambda: (net(x, t) ** 2).mean().backward()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    comp = get_registry().get("network", "unet")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    print(f"{'case':>7} {'saved MiB plain':>16} {'saved MiB ckpt':>15} {'ms plain':>9} {'ms ckpt':>8} "
          f"{'time ratio':>11}")
    for name, (options, shape) in CASES.items():
        nets = [comp.cls(comp.options_class(checkpointing=c, **options), DataInfo(shape, 0)) for c in (False, True)]
        nets[1].load_state_dict(nets[0].state_dict())
        x, t = torch.randn(args.batch, *shape), torch.rand(args.batch)
        sizes = [saved_bytes(net, x, t) / 2**20 for net in nets]

        ratio, ckpt_ms, plain_ms = interleaved(step(nets[1], x, t), step(nets[0], x, t), args.blocks, args.steps,
                                               warmup=1)
        print(f"{name:>7} {sizes[0]:>16.1f} {sizes[1]:>15.1f} {plain_ms:>9.1f} {ckpt_ms:>8.1f} {ratio:>11.3f}")


if __name__ == "__main__":
    main()
