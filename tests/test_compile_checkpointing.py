"""`[train] compile = true` (torch.compile) and the UNet's activation checkpointing."""

from __future__ import annotations

import json

import pytest
import torch

from fmcore.core.network import DataInfo
from fmcore.plugins.loading import get_registry
from tests.conftest import MOONS


def unet(**options):
    comp = get_registry().get("network", "unet")
    opts = comp.options_class(channels=8, channel_mult=[1, 2], blocks_per_level=1, attention_levels=[1],
                              dropout=0.1, **options)
    return comp.cls(opts, DataInfo((3, 8, 8), 2))


def test_checkpointing_gives_the_same_outputs_and_gradients():
    """Checkpointed blocks are recomputed in the backward pass, dropout included (its RNG state is kept):
    outputs and parameter gradients are bit-for-bit those of the plain network."""
    plain, ckpt = unet(), unet(checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    x, t, y = torch.randn(4, 3, 8, 8), torch.rand(4), torch.tensor([0, 1, 2, 1])
    grads = []
    for net in (plain, ckpt):
        net.train()
        torch.manual_seed(3)
        out = net(x, t, y)
        (out**2).sum().backward()
        grads.append((out.detach(), [p.grad.clone() for p in net.parameters()]))
    assert torch.equal(grads[0][0], grads[1][0])
    assert all(torch.equal(a, b) for a, b in zip(grads[0][1], grads[1][1], strict=True))


def test_checkpointing_is_off_without_gradients():
    net = unet(checkpointing=True).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 8, 8), torch.rand(2)).shape == (2, 3, 8, 8)


@pytest.mark.slow  # torch.compile: 97 s for this file with a cold inductor cache under load, 5 s warm
def test_compile_fails_with_a_clear_message_where_it_cannot_compile(fm, write_recipe, tmp_path):
    import torch._inductor.config as inductor

    torch._dynamo.reset()
    recipe = write_recipe(MOONS.replace("log_every = 10\n", "log_every = 10\ncompile = true\n"))
    with inductor.patch({"cpp.cxx": ("/nonexistent/c++",), "fx_graph_cache": False}):
        code, _, err = fm("train", recipe, "--run-dir", tmp_path / "run")
    torch._dynamo.reset()
    assert code == 2, err
    assert "error: [train] compile = true: torch.compile could not compile the network" in err
    assert "set compile = false" in err and "Traceback" not in err
    assert "/nonexistent/c++" in err or "InvalidCxxCompiler" in err, err


@pytest.mark.slow
def test_compiled_training_follows_eager_training(fm, write_recipe, tmp_path):
    """Same recipe, compiled and eager: the compiled kernels round differently, so the losses agree to a
    tolerance, not bit for bit."""
    losses = {}
    for flag in ("false", "true"):
        recipe = write_recipe(MOONS.replace("log_every = 10\n", f"log_every = 10\ncompile = {flag}\n"),
                              name=f"{flag}.toml")
        code, _, err = fm("train", recipe, "--run-dir", tmp_path / flag)
        assert code == 0, err
        rows = [json.loads(line) for line in (tmp_path / flag / "metrics.jsonl").read_text().splitlines()]
        losses[flag] = [r["loss"] for r in rows]
    assert losses["true"] == pytest.approx(losses["false"], rel=1e-3)
