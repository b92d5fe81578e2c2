"""The network kit: outputs shaped like x for several batch sizes and labels (the null label included), each
sample's output independent of the rest of its batch, gradients reaching every parameter, ``data_problems``
empty for the data it is checked with, and a parameter-free network when it declares ``trainable = False``."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from fmcore.core.network import DataInfo, Network
from fmcore.core.prediction import Prediction
from fmcore.testing.common import ReferencePath, declared, gen, randn
from fmcore.testing.datasets import MixtureDataset

#: data the network kit checks with by default: unlabelled vectors, labelled vectors
DEFAULT_INFOS: tuple[DataInfo, ...] = (DataInfo((2,)), DataInfo((2,), num_classes=3))


def build_network(cls: type[Network], options: Any, info: DataInfo) -> Network:
    """``cls(options, info)``, bound to the kit's :class:`MixtureDataset` of ``info`` on the reference path
    (velocity prediction), after checking that ``cls.data_problems(options, info)`` is empty."""
    problems = cls.data_problems(options, info)
    if problems:
        raise AssertionError(f"{cls.__name__}.data_problems({options!r}, {info!r}) = {problems}: choose options "
                             "and data (infos) the network supports in the conformance test")
    network = cls(options, info)
    network.bind(MixtureDataset(info), ReferencePath(), Prediction.VELOCITY)
    return network


def _inputs(info: DataInfo, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``x`` [n, *shape], ``t`` [n] in [0, 1] and labels cycling through ``0 .. num_classes`` (the null label
    ``num_classes`` included), or None for unlabelled data; the first rows are the same for every ``n <= 64``."""
    x = randn((64, *info.shape), seed, torch.float32)[:n]
    t = torch.rand(64, generator=gen(seed + 1))[:n]
    cond = torch.arange(n) % (info.num_classes + 1) if info.num_classes else None
    return x, t, cond


def check_network_outputs(network: Network, info: DataInfo, sizes: Sequence[int] = (1, 3, 8)) -> None:
    """For each batch size (labels cycling through every class and the null label): the output is a finite
    tensor shaped like ``x``, in its dtype; with labels, no ``cond`` means the null label; and a sample's output
    does not depend on the other samples of its batch (the first 1 of 8 equal the batch of 1, in eval mode)."""
    network.eval()
    with torch.no_grad():
        outs = {}
        for n in sizes:
            x, t, cond = _inputs(info, n, 0)
            try:
                out = network(x, t, cond)
            except Exception as exc:
                raise AssertionError(f"the network failed on x of shape {tuple(x.shape)} with labels {cond} (the null "
                                     f"label is num_classes = {info.null_label}): {type(exc).__name__}: {exc}") from exc
            if not isinstance(out, torch.Tensor) or out.shape != x.shape or out.dtype != x.dtype:
                got = (tuple(out.shape), out.dtype) if isinstance(out, torch.Tensor) else type(out).__name__
                raise AssertionError(f"for x of shape {tuple(x.shape)} ({x.dtype}) the output is {got}; "
                                     "expected a tensor shaped like x, in x's dtype")
            if not torch.isfinite(out).all():
                raise AssertionError(f"output for a batch of {n} (labels {cond}) is not finite")
            outs[n] = out
        if info.num_classes:
            x, t, _ = _inputs(info, 4, 0)
            null = torch.full((4,), info.null_label, dtype=torch.long)
            if not torch.allclose(network(x, t), network(x, t, null), rtol=1e-5, atol=1e-6):
                raise AssertionError("with labels, network(x, t) (no cond) must equal network(x, t, null label "
                                     f"{info.null_label}): unconditional sampling calls it without cond")
    small, large = min(sizes), max(sizes)
    if not torch.allclose(outs[large][:small], outs[small], rtol=1e-4, atol=1e-5):
        raise AssertionError(f"the output of the first {small} samples changes when {large - small} more join the "
                             "batch: a sample must depend only on its own x, t and label (no batch statistics)")


def check_network_gradients(network: Network, info: DataInfo, n: int = 8, seed: int = 0) -> None:
    """A ``trainable`` network has parameters, and the gradient of a random projection of its output reaches
    every one (finite, non-zero), at parameters perturbed by 1 % noise so that zero-initialised layers do not
    hide the others; a network declaring ``trainable = False`` has no parameters at all."""
    params = list(network.parameters())
    if not type(network).trainable:
        if params:
            names = [name for name, _ in network.named_parameters()]
            raise AssertionError(f"{type(network).__name__} declares trainable = False but has parameters "
                                 f"{names[:5]}: make them buffers (register_buffer) or declare it trainable")
        return
    if not params:
        raise AssertionError(f"{type(network).__name__} is trainable (the default) but has no parameters: declare "
                             "`trainable = False` for a parameter-free network")
    net = copy.deepcopy(network).train()
    with torch.no_grad():
        for i, p in enumerate(net.parameters()):
            p.add_(0.01 * (p.abs().mean() + 1e-2) * randn(p.shape, seed + 100 + i, p.dtype))
    x, t, cond = _inputs(info, n, seed)
    out = net(x, t, cond)
    (out * randn(out.shape, seed + 7, out.dtype)).sum().backward()
    for name, p in net.named_parameters():
        if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.abs().sum() > 0):
            raise AssertionError(f"no finite, non-zero gradient reaches parameter {name!r} for data {info} "
                                 f"(grad {None if p.grad is None else float(p.grad.abs().sum())})")


def check_network(cls: type[Network], options: Any, infos: Sequence[DataInfo] = DEFAULT_INFOS) -> None:
    """Every network check, for each data description in ``infos``."""
    for info in infos:
        network = build_network(cls, options, info)
        check_network_outputs(network, info)
        check_network_gradients(network, info)


class NetworkConformance:
    """Subclass with ``network = MyNet`` (the class), ``options = MyNet.Options(...)`` (keep it small) and
    optionally ``infos`` (default: 2D vectors, unlabelled and with 3 classes; image networks set e.g.
    ``(DataInfo((1, 8, 8)), DataInfo((3, 8, 8), 10))``)."""

    network: ClassVar[type[Network] | None] = None
    options: ClassVar[Any] = None
    infos: ClassVar[tuple[DataInfo, ...]] = DEFAULT_INFOS

    def make_networks(self) -> list[tuple[DataInfo, Network]]:
        cls = declared(self, "network")
        options = self.options if self.options is not None else cls.Options()
        return [(info, build_network(cls, options, info)) for info in self.infos]

    def test_network_outputs(self) -> None:
        for info, network in self.make_networks():
            check_network_outputs(network, info)

    def test_network_gradients_and_trainable(self) -> None:
        for info, network in self.make_networks():
            check_network_gradients(network, info)
