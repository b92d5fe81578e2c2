"""What every conformance kit shares: shapes, seeded draws, tolerant comparison, the reference path and the
exact two-blob field."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
from torch import Tensor

from fmcore.core.field import Field
from fmcore.core.options import help_field, in_range
from fmcore.core.oracle import GaussianMixture, oracle_field
from fmcore.core.path import GaussianPath
from fmcore.core.prediction import Prediction

VECTOR_SHAPE: tuple[int, ...] = (2,)
IMAGE_SHAPE: tuple[int, ...] = (3, 4, 4)
DEFAULT_SHAPES: tuple[tuple[int, ...], ...] = (VECTOR_SHAPE, IMAGE_SHAPE)


def devices() -> list[torch.device]:
    """The devices to check on: the CPU, plus CUDA where available."""
    out = [torch.device("cpu")]
    if torch.cuda.is_available():
        out.append(torch.device("cuda"))
    return out


def gen(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def randn(shape: Sequence[int], seed: int, dtype=torch.float64, device=None) -> Tensor:
    """Standard normal draws of ``shape`` from ``seed`` (the same on every device)."""
    return torch.randn(tuple(shape), generator=gen(seed), dtype=dtype).to(device)


def interior_times(n: int, seed: int, margin: float, dtype=torch.float64, device=None) -> Tensor:
    """``n`` times in ``[margin, 1 - margin]``, including both ends of that interval."""
    t = margin + (1 - 2 * margin) * torch.rand(n, generator=gen(seed), dtype=dtype)
    t[0], t[-1] = margin, 1 - margin
    return t.to(device)


def close(actual: Tensor, expected: Tensor, what: str, rtol: float, atol: float) -> None:
    """``|actual - expected| <= atol + rtol |expected|`` elementwise, else an AssertionError naming the worst entry."""
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}")
    if not torch.isfinite(actual).all():
        raise AssertionError(f"{what}: has non-finite values")
    err = (actual - expected).abs()
    bound = atol + rtol * expected.abs()
    if not (err <= bound).all():
        i = int(torch.argmax((err - bound).flatten()))
        raise AssertionError(f"{what}: differs by {float(err.flatten()[i]):.3g} at flat index {i} "
                             f"(got {float(actual.flatten()[i]):.6g}, expected {float(expected.flatten()[i]):.6g}; "
                             f"rtol {rtol}, atol {atol})")


def declared(kit: object, name: str):
    """The component a conformance subclass set as the class attribute ``name`` (error if it set none)."""
    value = getattr(kit, name)
    if value is None:
        raise TypeError(f"{type(kit).__name__} must set `{name} = ...` or override make_{name}()")
    return value


# -- a reference path and an exact field, for objectives, samplers and networks ------------------------
@attrs.define(kw_only=True)
class ReferencePathOptions:
    sigma_min: float = help_field(0.01, "noise std left at t = 1", validator=in_range(0.0, 1.0, hi_open=True))


class ReferencePath(GaussianPath):
    """The linear path alpha_t = t, beta_t = 1 - (1 - sigma_min) t, in the kit so it needs no plugin."""

    Options = ReferencePathOptions

    def __init__(self, options: ReferencePathOptions | None = None):
        self.options = options or ReferencePathOptions()

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        k = 1.0 - self.options.sigma_min
        return t, 1.0 - k * t, torch.ones_like(t), torch.full_like(t, -k)


#: The data of the sampler checks: two Gaussian blobs of unequal weight in 2D.
MIXTURE_MEANS = ((-1.5, 0.0), (1.5, 0.5))
MIXTURE_STD = 0.4
MIXTURE_WEIGHTS = (0.3, 0.7)


def mixture_for(shape: Sequence[int] = VECTOR_SHAPE) -> GaussianMixture:
    """The sampler checks' data: for 2D, two blobs (``MIXTURE_*``); for another shape, two blobs at -1 and +1."""
    if tuple(shape) == (2,):
        means = torch.tensor(MIXTURE_MEANS, dtype=torch.float64)
    else:
        means = torch.stack([-torch.ones(shape, dtype=torch.float64), torch.ones(shape, dtype=torch.float64)])
    return GaussianMixture.isotropic(means, MIXTURE_STD, torch.tensor(MIXTURE_WEIGHTS, dtype=torch.float64))


def exact_field(shape: Sequence[int] = VECTOR_SHAPE, path: GaussianPath | None = None) -> Field:
    """The exact velocity field (:mod:`fmcore.core.oracle`) of :func:`mixture_for` on ``path`` (default:
    :class:`ReferencePath`)."""
    return oracle_field(mixture_for(shape), path or ReferencePath(), Prediction.VELOCITY)


#: the path of :func:`exact_fields` singular at the data end: CondOT with sigma_min = 0 (beta_1 = 0)
SINGULAR_PATH = ReferencePath(ReferencePathOptions(sigma_min=0.0))


def exact_fields(shape: Sequence[int] = VECTOR_SHAPE) -> dict[str, Field]:
    """The exact velocity fields the sampler checks run on, by description: the regular reference path, and
    CondOT with ``sigma_min = 0``, whose score ``-eps_hat / beta_t`` is infinite at ``t = 1`` (the field's time
    range is still ``[0, 1]``, as for a velocity model trained on that path)."""
    return {"two blobs on the reference path (sigma_min = 0.01)": exact_field(shape),
            "two blobs on CondOT with sigma_min = 0 (beta_1 = 0: the score is infinite at t = 1)":
                exact_field(shape, SINGULAR_PATH)}
