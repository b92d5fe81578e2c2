"""The data-set kit: ``info`` against what ``sample`` returns (shapes, dtypes, labels), seeding, the reference
set, finite values, and the exact law where the data set declares one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch

from fmcore.core.dataset import Batch, Dataset
from fmcore.core.network import DataInfo
from fmcore.core.options import NoOptions
from fmcore.core.oracle import GaussianMixture
from fmcore.testing.common import declared, gen, mixture_for


def check_batch(batch: Batch, info: DataInfo, n: int, what: str) -> None:
    """``batch`` holds ``n`` finite float32 samples of ``info.shape`` and, exactly when ``info.num_classes > 0``,
    int64 labels [n] in ``0 .. num_classes - 1``."""
    if not isinstance(batch, Batch):
        raise AssertionError(f"{what} returned {type(batch).__name__}, expected a fmcore Batch")
    x, labels = batch.x, batch.labels
    if tuple(x.shape) != (n, *info.shape):
        raise AssertionError(f"{what}: x has shape {tuple(x.shape)}, but info.shape = {info.shape} says "
                             f"{(n, *info.shape)}")
    if x.dtype != torch.float32:
        raise AssertionError(f"{what}: x is {x.dtype}, expected torch.float32 (what networks train in)")
    if not torch.isfinite(x).all():
        raise AssertionError(f"{what}: x has non-finite values")
    if info.num_classes == 0:
        if labels is not None:
            raise AssertionError(f"{what}: labels given, but info.num_classes = 0 says the data is unlabelled")
        return
    if labels is None:
        raise AssertionError(f"{what}: no labels, but info.num_classes = {info.num_classes}")
    if tuple(labels.shape) != (n,) or labels.dtype != torch.int64:
        raise AssertionError(f"{what}: labels have shape {tuple(labels.shape)} and dtype {labels.dtype}, "
                             f"expected ({n},) of torch.int64")
    if n and not (0 <= int(labels.min()) and int(labels.max()) < info.num_classes):
        raise AssertionError(f"{what}: labels from {int(labels.min())} to {int(labels.max())}, expected "
                             f"0 .. {info.num_classes - 1} (num_classes = {info.num_classes})")


def check_dataset_info(dataset: Dataset) -> None:
    """``info`` is a DataInfo with a shape of positive ints and ``num_classes >= 0``."""
    info = dataset.info
    if not isinstance(info, DataInfo):
        raise AssertionError(f"info is {type(info).__name__}, expected fmcore.DataInfo")
    if not (isinstance(info.shape, tuple) and info.shape and all(isinstance(d, int) and d > 0 for d in info.shape)):
        raise AssertionError(f"info.shape = {info.shape!r}, expected a non-empty tuple of ints > 0")
    if not (isinstance(info.num_classes, int) and info.num_classes >= 0):
        raise AssertionError(f"info.num_classes = {info.num_classes!r}, expected an int >= 0")


def check_dataset_samples(dataset: Dataset, sizes: Sequence[int] = (1, 7, 64)) -> None:
    """``sample(n, generator)`` agrees with ``info`` for several ``n`` (:func:`check_batch`)."""
    for n in sizes:
        check_batch(dataset.sample(n, gen(n)), dataset.info, n, f"sample({n}, generator)")


def _same(a: Batch, b: Batch) -> bool:
    return torch.equal(a.x, b.x) and (a.labels is None) == (b.labels is None) and (
        a.labels is None or torch.equal(a.labels, b.labels))


def check_dataset_seeding(dataset: Dataset, n: int = 64) -> None:
    """The same generator seed gives the same batch, another seed another batch, and the global torch
    generator is not used (all randomness comes from the ``generator`` argument)."""
    state = torch.get_rng_state()
    a, b, c = dataset.sample(n, gen(1)), dataset.sample(n, gen(1)), dataset.sample(n, gen(2))
    if not torch.equal(torch.get_rng_state(), state):
        raise AssertionError("sample() advanced the global torch random generator: draw only from `generator`")
    if not _same(a, b):
        raise AssertionError("sample(n, generator) gave different batches for two generators with the same seed")
    if _same(a, c):
        raise AssertionError("sample(n, generator) gave the same batch for seeds 1 and 2")


def check_dataset_reference(dataset: Dataset, n: int = 32) -> None:
    """``reference(n, seed)`` agrees with ``info`` and is the same for the same seed."""
    a = dataset.reference(n, 0)
    check_batch(a, dataset.info, n, f"reference({n}, 0)")
    if not _same(a, dataset.reference(n, 0)):
        raise AssertionError("reference(n, seed) differs between two calls with the same seed")


def check_dataset_mixture(dataset: Dataset, n: int = 4000, tol: float = 0.1) -> None:
    """Where ``mixture()`` declares the exact law: it has ``info.shape``, and samples have its mean and
    standard deviation per coordinate (within ``tol`` of the law's overall standard deviation)."""
    mixture = dataset.mixture()
    if mixture is None:
        return
    if tuple(mixture.shape) != tuple(dataset.info.shape):
        raise AssertionError(f"mixture() has shape {tuple(mixture.shape)}, but info.shape = {dataset.info.shape}")
    x = dataset.sample(n, gen(5)).x.double().flatten(1)
    exact = mixture.sample(n, gen(6)).double().flatten(1)
    scale = float(exact.std(0).max())
    for what, got, want in (("mean", x.mean(0), exact.mean(0)), ("std", x.std(0), exact.std(0))):
        err = float((got - want).abs().max())
        if not err <= tol * scale:
            raise AssertionError(f"samples do not follow mixture(): their {what} differs from the mixture's by "
                                 f"{err:.3g} > {tol} x {scale:.3g}")


def check_dataset(dataset: Dataset) -> None:
    """Every data-set check."""
    check_dataset_info(dataset)
    check_dataset_samples(dataset)
    check_dataset_seeding(dataset)
    check_dataset_reference(dataset)
    check_dataset_mixture(dataset)


class DatasetConformance:
    """Subclass with ``dataset = MyData(MyData.Options(...))`` (or override :meth:`make_dataset`, e.g. to
    write files into a temporary folder first)."""

    dataset: ClassVar[Dataset | None] = None

    def make_dataset(self) -> Dataset:
        return declared(self, "dataset")

    def test_dataset_info(self) -> None:
        check_dataset_info(self.make_dataset())

    def test_dataset_samples_match_info(self) -> None:
        check_dataset_samples(self.make_dataset())

    def test_dataset_seeding(self) -> None:
        check_dataset_seeding(self.make_dataset())

    def test_dataset_reference(self) -> None:
        check_dataset_reference(self.make_dataset())

    def test_dataset_mixture_is_its_law(self) -> None:
        check_dataset_mixture(self.make_dataset())


class MixtureDataset(Dataset):
    """The kit's own data: :func:`~fmcore.testing.common.mixture_for` of ``info.shape``, with uniform labels
    when ``info.num_classes > 0`` (what the network kit binds networks to)."""

    Options = NoOptions

    def __init__(self, info: DataInfo):
        self._info = info
        self._mixture = mixture_for(info.shape)

    @property
    def info(self) -> DataInfo:
        return self._info

    def mixture(self) -> GaussianMixture:
        return self._mixture

    def sample(self, n: int, generator: torch.Generator | None = None) -> Batch:
        x = self._mixture.sample(n, generator).float()
        labels = torch.randint(self._info.num_classes, (n,), generator=generator) if self._info.num_classes else None
        return Batch(x, labels)
