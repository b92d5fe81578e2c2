"""2D benchmark distributions, generated on the fly from a torch generator.

Conventions follow the flow-matching literature (torchcfm, FFJORD) so that numbers compare:
``moons`` is scikit-learn's ``make_moons(noise=0.2) * 3 - 1``; ``8gaussians`` has centres on the circle of
radius 5 and variance 0.1 per coordinate; ``checkerboard``, ``circles`` and ``spirals`` are FFJORD's.
"""

from __future__ import annotations

import abc
import math

import attrs
import numpy as np
import torch
from torch import Tensor

from fmcore import Batch, DataInfo, Dataset
from fmcore.core.options import help_field, non_negative


@attrs.define(kw_only=True)
class NoOptions:
    """This data set has no options."""


@attrs.define(kw_only=True)
class MoonsOptions:
    noise: float = help_field(0.2, "std of the Gaussian noise of make_moons (before scaling by 3)",
                              validator=non_negative)


def _numpy_seed(generator: torch.Generator | None) -> int:
    return int(torch.randint(2**31 - 1, (), generator=generator))


class Toy2D(Dataset):
    """Base of the 2D data sets: unlabelled points in the plane."""

    Options = NoOptions

    def __init__(self, options):
        self.options = options

    @property
    def info(self) -> DataInfo:
        return DataInfo((2,))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Batch:
        return Batch(self.points(n, generator).float())

    @abc.abstractmethod
    def points(self, n: int, generator: torch.Generator | None) -> Tensor:
        """``n`` points, shape [n, 2]."""


class Moons(Toy2D):
    """Two interleaving half circles: scikit-learn's make_moons(noise=0.2), scaled by 3 and shifted by -1."""

    Options = MoonsOptions

    def points(self, n, generator):
        from sklearn.datasets import make_moons  # imported when used: scikit-learn costs ~1.5 s at startup

        x, _ = make_moons(n, noise=self.options.noise, random_state=_numpy_seed(generator))
        return torch.from_numpy(x.astype(np.float32)) * 3.0 - 1.0

    def measures(self, x: Tensor) -> dict[str, float]:
        """``thickness``: the RMS distance of the points to the two noiseless half circles."""
        return {"thickness": float(moon_distance(x.double()).square().mean().sqrt())}


def moon_distance(x: Tensor) -> Tensor:
    """Distance of each point of ``x`` [n, 2] to the nearer of make_moons' noiseless curves (scaled by 3 and
    shifted by -1): the upper half of the unit circle about (0, 0) and the lower half about (1, 0.5)."""
    p = (x + 1.0) / 3.0
    arcs = ((torch.tensor([0.0, 0.0], dtype=x.dtype), 1.0), (torch.tensor([1.0, 0.5], dtype=x.dtype), -1.0))
    dists = []
    for centre, side in arcs:
        d = p - centre
        ends = torch.stack([centre + torch.tensor([1.0, 0.0], dtype=x.dtype),
                            centre - torch.tensor([1.0, 0.0], dtype=x.dtype)])
        to_end = torch.cdist(p, ends).min(dim=1).values
        on_arc = side * d[:, 1] >= 0
        dists.append(torch.where(on_arc, (d.norm(dim=1) - 1.0).abs(), to_end))
    return 3.0 * torch.minimum(*dists)


class EightGaussians(Toy2D):
    """Eight Gaussians of variance 0.1 per coordinate centred on the circle of radius 5."""

    def points(self, n, generator):
        k = torch.randint(8, (n,), generator=generator)
        angle = k.float() * (2 * math.pi / 8)
        centres = 5.0 * torch.stack([angle.cos(), angle.sin()], dim=1)
        return centres + math.sqrt(0.1) * torch.randn(n, 2, generator=generator)

    def mixture(self):
        """The exact law: 8 equally weighted N(5 (cos 2 pi k/8, sin 2 pi k/8), 0.1 I)."""
        from fmcore.core.oracle import GaussianMixture

        angle = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return GaussianMixture.isotropic(5.0 * torch.stack([angle.cos(), angle.sin()], dim=1), math.sqrt(0.1))


class Checkerboard(Toy2D):
    """Uniform on the black squares of a 4 x 4 checkerboard covering [-4, 4]^2 (FFJORD)."""

    def points(self, n, generator):
        x1 = torch.rand(n, generator=generator) * 4 - 2
        x2 = torch.rand(n, generator=generator) - 2 * torch.randint(2, (n,), generator=generator).float()
        x2 = x2 + torch.floor(x1) % 2
        return 2.0 * torch.stack([x1, x2], dim=1)


class Circles(Toy2D):
    """Two concentric circles: make_circles(factor=0.5, noise=0.08) scaled by 3 (FFJORD)."""

    def points(self, n, generator):
        from sklearn.datasets import make_circles

        x, _ = make_circles(n, factor=0.5, noise=0.08, random_state=_numpy_seed(generator))
        return torch.from_numpy(x.astype(np.float32)) * 3.0


class Spirals(Toy2D):
    """Two interleaved spirals, radius up to ~9.4 (FFJORD's "2spirals")."""

    def points(self, n, generator):
        half = n // 2 + n % 2
        r = torch.sqrt(torch.rand(half, generator=generator)) * 540 * (2 * math.pi) / 360
        arm = torch.stack([-torch.cos(r) * r, torch.sin(r) * r], dim=1)
        arm = arm + 0.5 * torch.rand(half, 2, generator=generator)
        pts = torch.cat([arm, -arm])[:n] / 3.0
        return pts + 0.1 * torch.randn(n, 2, generator=generator)
