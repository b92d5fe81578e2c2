"""Networks: ``f(x, t, cond) -> tensor shaped like x``."""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import torch
from torch import Tensor, nn


@attrs.frozen
class DataInfo:
    """What a network needs to know about its data: the shape of one sample and the class count.

    ``num_classes = 0`` means unconditional; otherwise labels are ``0 .. num_classes - 1`` and the label
    ``num_classes`` is the null condition used for classifier-free guidance.
    """

    shape: tuple[int, ...]
    num_classes: int = 0

    @property
    def null_label(self) -> int:
        return self.num_classes


class Network(nn.Module):
    """Base class of every network component: built from ``(options, DataInfo)``.

    ``forward(x, t, cond=None)`` takes ``x`` of shape [N, *shape], ``t`` of shape [N] and optional integer
    labels ``cond`` of shape [N] (``null_label`` for "no condition") and returns a tensor shaped like ``x``.
    """

    Options: ClassVar[type]
    #: False for parameter-free networks (the exact ``oracle`` field): nothing to train
    trainable: ClassVar[bool] = True
    #: the network reads the path's alpha_t, beta_t (the exact ``oracle`` field does)
    needs_gaussian_path: ClassVar[bool] = False

    @classmethod
    def data_problems(cls, options, info: DataInfo) -> list[str]:
        """Why a network with ``options`` cannot model data described by ``info`` (shape, labels); checked
        before the network is allocated. Empty by default (any shape, labels optional)."""
        return []

    def __init__(self, options, info: DataInfo):
        super().__init__()
        self.options = options
        self.info = info

    def bind(self, dataset, path, prediction) -> None:
        """Called once after construction with the recipe's data set, path and the objective's prediction
        (a network defined by them, like the exact ``oracle`` field, reads them here); nothing by default."""

    def time_range(self) -> tuple[float, float]:
        """Times where the network's output is finite (after :meth:`bind`); the field evaluates it only inside
        this range intersected with the objective's. [0, 1] by default."""
        return 0.0, 1.0

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:  # pragma: no cover
        raise NotImplementedError


class SinusoidalTimeEmbedding(nn.Module):
    """``t -> [sin(w_k s t), cos(w_k s t)]`` with ``w_k = exp(-ln(10^4) k / (dim/2))`` and ``s = 1000``."""

    def __init__(self, dim: int, scale: float = 1000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"time embedding dimension must be even, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs * scale, persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        args = t.to(self.freqs.dtype)[:, None] * self.freqs[None]
        return torch.cat([args.sin(), args.cos()], dim=-1)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
}


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
