"""The unet network: shapes, options, errors, zero output at init, and every path x objective on digits."""

from __future__ import annotations

import itertools

import pytest
import torch
from fmcore_networks.unet import UNet, UNetOptions

from fmcore import DataInfo
from fmcore.recipe.build import build
from fmcore.recipe.recipe import recipe_from_dict
from fmcore.run.sampling import balanced_labels, generate

TINY = {"name": "unet", "channels": 8, "channel_mult": [1, 2], "blocks_per_level": 1, "attention_levels": [1]}


def tiny_recipe(path: str = "condot", objective: str = "cfm", **network) -> dict:
    return {"data": {"name": "digits"}, "path": {"name": path}, "objective": {"name": objective, "t_eps": 1e-3},
            "network": {**TINY, **network}, "sampler": {"name": "euler", "steps": 3}, "train": {"steps": 3}}


@pytest.mark.parametrize("channels,shape,mult", [(1, (1, 8, 8), [1, 2]), (3, (3, 12, 20), [1, 2, 2]),
                                                 (5, (5, 6, 10), [1, 3]), (2, (2, 4, 4), [2])])
def test_any_channels_and_divisible_sizes(channels, shape, mult):
    net = UNet(UNetOptions(channels=12, channel_mult=mult, blocks_per_level=2, attention_levels=[0]),
               DataInfo(shape, num_classes=3))
    with torch.no_grad():  # leave the zero init (output 0, blind to t and labels) as training would
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(4, *shape)
    out = net(x, torch.rand(4), torch.tensor([0, 1, 2, 3]))
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.equal(out, net(x, torch.rand(4), torch.tensor([3, 2, 1, 0])))


def test_output_is_zero_at_initialisation():
    net = UNet(UNetOptions(channels=8, channel_mult=[1, 2]), DataInfo((1, 8, 8)))
    assert torch.equal(net(torch.randn(3, 1, 8, 8), torch.rand(3)), torch.zeros(3, 1, 8, 8))


def test_indivisible_size_is_a_clear_error(registry, write_recipe, fm):
    recipe = write_recipe('[data]\nname = "digits"\n[path]\nname = "condot"\n[objective]\nname = "cfm"\n'
                          '[network]\nname = "unet"\nchannel_mult = [1, 2, 2, 2, 2]\n')
    code, _out, err = fm("recipe", "check", recipe)
    assert code == 2
    assert "halves the resolution 4 times, so H and W must be divisible by 16; the data is 8 x 8" in err


def test_vector_data_and_class_mismatch_are_errors(registry):
    with pytest.raises(ValueError, match=r"needs image data of shape \[C, H, W\].*\[2\]"):
        UNet(UNetOptions(), DataInfo((2,)))
    with pytest.raises(ValueError, match="num_classes = 7, but the data has 10 classes"):
        UNet(UNetOptions(num_classes=7), DataInfo((1, 8, 8), 10))
    with pytest.raises(ValueError, match="levels are 0 .. 1"):
        UNet(UNetOptions(channel_mult=[1, 2], attention_levels=[2]), DataInfo((1, 8, 8)))


def test_num_classes_follows_the_data_or_is_switched_off(registry):
    follows = build(recipe_from_dict(tiny_recipe(), registry), registry).network
    off = build(recipe_from_dict(tiny_recipe(num_classes=0), registry), registry).network
    assert follows.info.num_classes == 10 and hasattr(follows, "class_embedding")
    assert off.info.num_classes == 0 and not hasattr(off, "class_embedding")


@pytest.mark.parametrize("path,objective", list(itertools.product(["condot", "vp", "ve"], ["cfm", "dsm", "ddpm"])))
def test_every_path_and_objective_trains_and_samples(registry, path, objective):
    torch.manual_seed(0)
    c = build(recipe_from_dict(tiny_recipe(path, objective), registry), registry)
    opt = torch.optim.Adam(c.network.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(3):
        loss = c.objective.loss(c.network, c.path, c.dataset.sample(16, g), c.dataset.info.null_label)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    c.network.eval()
    labels = balanced_labels(6, 10)
    x = generate(c.field(), c.sampler, 6, c.dataset.info.shape, labels=labels, null_label=10, guidance=2.0).x
    assert x.shape == (6, 1, 8, 8) and torch.isfinite(x).all()
