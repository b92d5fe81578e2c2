"""Classifier-free guidance: w = 0 and w = 1 are exactly unconditional and conditional sampling, for every
sampler and parameterization; the guided combination commutes with the conversions between parameterizations."""

from __future__ import annotations

import pytest
import torch
from fmcore_networks.unet import UNet, UNetOptions

from fmcore import DataInfo, Field, Prediction, convert
from fmcore.run.sampling import balanced_labels, generate

PATHS = ("condot", "vp", "ve")
KINDS = list(Prediction)


def _path(registry, name):
    comp = registry.get("path", name)
    return comp.cls(comp.options_class())


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("source", KINDS)
@pytest.mark.parametrize("target", KINDS)
def test_guidance_commutes_with_conversion(registry, name, source, target):
    """convert(u + w (c - u)) = convert(u) + w (convert(c) - convert(u)): the maps are affine in the prediction
    with coefficients depending only on (x, t), and the weights (1 - w) + w sum to 1."""
    path = _path(registry, name)
    g = torch.Generator().manual_seed(0)
    x, cond, uncond = (torch.randn(16, 1, 4, 4, generator=g, dtype=torch.float64) for _ in range(3))
    t = torch.rand(16, generator=g, dtype=torch.float64) * 0.9 + 0.05
    s = path.schedule(t, x)
    for w in (0.0, 0.5, 1.0, 2.0, 4.5):
        guided_then_converted = convert(uncond + w * (cond - uncond), source, target, x, s)
        cu, cc = convert(uncond, source, target, x, s), convert(cond, source, target, x, s)
        torch.testing.assert_close(guided_then_converted, cu + w * (cc - cu), rtol=1e-9, atol=1e-9)


def _net():
    torch.manual_seed(0)
    net = UNet(UNetOptions(channels=8, channel_mult=[1, 2], blocks_per_level=1, attention_levels=[1]),
               DataInfo((1, 8, 8), num_classes=4))
    with torch.no_grad():  # leave the zero init, so that the output depends on x, t and the labels
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return net.eval()


class FixedLabels(torch.nn.Module):
    """The network with its condition fixed: plain conditional (or unconditional) sampling."""

    def __init__(self, net, labels):
        super().__init__()
        self.net, self.labels = net, labels

    def forward(self, x, t, cond=None):
        return self.net(x, t, self.labels[: x.shape[0]])


SAMPLERS = ("euler", "heun", "euler_maruyama", "ddim", "dpm_solver_pp", "unipc", "edm", "adams")


@pytest.mark.parametrize("sampler_name", SAMPLERS)
@pytest.mark.parametrize("path_name,prediction", [("condot", Prediction.VELOCITY), ("vp", Prediction.NOISE),
                                                  ("ve", Prediction.SCORE)])
def test_guidance_zero_and_one_are_exact(registry, sampler_name, path_name, prediction):
    if ("sampler", sampler_name) not in registry:
        pytest.skip(f"sampler {sampler_name} not installed")
    net, path = _net(), _path(registry, path_name)
    comp = registry.get("sampler", sampler_name)
    sampler = comp.cls(comp.options_class(steps=4))
    time_range = (0.0, 1.0) if prediction is Prediction.VELOCITY else (1e-3, 1 - 1e-3)
    n = 8
    labels = balanced_labels(n, 4)
    null = torch.full((n,), 4)

    def run(network, **kw):
        field = Field(network, path, prediction, time_range)
        return generate(field, sampler, n, (1, 8, 8), seed=3, batch_size=64, **kw).x

    unconditional = run(net)  # no labels at all: the network uses its null label
    assert torch.equal(run(net, labels=labels, null_label=4, guidance=0.0), unconditional)
    assert torch.equal(run(FixedLabels(net, null), labels=None), unconditional)
    conditional = run(FixedLabels(net, labels))
    assert torch.equal(run(net, labels=labels, null_label=4, guidance=1.0), conditional)
    guided = run(net, labels=labels, null_label=4, guidance=3.0)
    assert not torch.allclose(guided, conditional)


def test_guided_field_is_the_combination(registry):
    net, path = _net(), _path(registry, "condot")
    x, t, labels = torch.randn(6, 1, 8, 8), torch.rand(6), balanced_labels(6, 4)
    field = Field(net, path).with_condition(labels, torch.full_like(labels, 4), 2.5)
    with torch.no_grad():
        cond, uncond = net(x, t, labels), net(x, t, torch.full_like(labels, 4))
        torch.testing.assert_close(field.velocity(x, t), uncond + 2.5 * (cond - uncond), rtol=1e-5, atol=1e-5)


def test_default_guidance_comes_from_the_sampler_options(registry):
    net, path = _net(), _path(registry, "condot")
    comp = registry.get("sampler", "euler")
    labels = balanced_labels(8, 4)
    field = Field(net, path)
    from_option = generate(field, comp.cls(comp.options_class(steps=3, guidance=2.0)), 8, (1, 8, 8),
                           labels=labels, null_label=4).x
    explicit = generate(field, comp.cls(comp.options_class(steps=3)), 8, (1, 8, 8), labels=labels, null_label=4,
                        guidance=2.0).x
    assert torch.equal(from_option, explicit)
