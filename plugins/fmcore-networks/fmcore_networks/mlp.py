"""A multilayer perceptron for vector data (any sample shape, flattened)."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor, nn

from fmcore import DataInfo, Network
from fmcore.core.network import ACTIVATIONS, SinusoidalTimeEmbedding
from fmcore.core.options import help_field, one_of, positive, positive_ints


@attrs.define(kw_only=True)
class MLPOptions:
    hidden: list[int] = help_field(attrs.Factory(lambda: [256, 256, 256]), "widths of the hidden layers",
                                   validator=positive_ints)
    activation: str = help_field("silu", "activation between layers", validator=one_of(tuple(ACTIVATIONS)))
    time_dim: int = help_field(64, "size of the sinusoidal time embedding (even)", validator=positive)
    class_dim: int = help_field(32, "size of the class embedding (conditional data only)", validator=positive)


class MLP(Network):
    """MLP on [x, sinusoidal(t), class embedding]: Linear -> act -> ... -> Linear, output shaped like x."""

    Options = MLPOptions

    def __init__(self, options: MLPOptions, info: DataInfo):
        super().__init__(options, info)
        self.time_embedding = SinusoidalTimeEmbedding(options.time_dim)
        dim = int(torch.Size(info.shape).numel())
        width = dim + options.time_dim
        if info.num_classes:
            self.class_embedding = nn.Embedding(info.num_classes + 1, options.class_dim)
            width += options.class_dim
        layers: list[nn.Module] = []
        for h in options.hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[options.activation]()]
            width = h
        layers.append(nn.Linear(width, dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        parts = [x.flatten(1), self.time_embedding(t).to(x.dtype)]
        if self.info.num_classes:
            if cond is None:
                cond = torch.full((x.shape[0],), self.info.null_label, device=x.device, dtype=torch.long)
            parts.append(self.class_embedding(cond).to(x.dtype))
        return self.layers(torch.cat(parts, dim=1)).view_as(x)
