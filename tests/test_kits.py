"""The data-set and network conformance kits on every built-in data set and network, and on broken ones."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import torch
from torch import nn

from fmcore import ArrayDataset, Batch, DataInfo, Dataset, GaussianMixture, Network
from fmcore.core.options import NoOptions
from fmcore.plugins.loading import get_registry
from fmcore.testing import (
    DatasetConformance,
    MixtureDataset,
    NetworkConformance,
    build_network,
    check_dataset,
    check_network,
    check_network_gradients,
    check_network_outputs,
)
from tests.tables import write_image_folder

REGISTRY = get_registry()
#: data sets that need files: made by fixtures below
FILE_DATASETS = ("file", "image_folder", "pairs", "shards")
#: small options per built-in network, and the data each is checked on
NETWORKS = {
    "mlp": ({"hidden": [16, 16], "time_dim": 8, "class_dim": 4}, (DataInfo((2,)), DataInfo((1, 4, 4), 3))),
    "unet": ({"channels": 8, "channel_mult": [1, 2], "blocks_per_level": 1, "attention_levels": [1],
              "head_channels": 8}, (DataInfo((1, 8, 8), 10), DataInfo((3, 8, 8)))),
    "oracle": ({"max_points": 50}, (DataInfo((2,)), DataInfo((1, 4, 4), 3))),
}


def _options(kind: str, name: str, **options):
    cls = REGISTRY.get(kind, name).cls
    return cls, cls.Options(**options)


for _name in REGISTRY.names("dataset"):
    if _name not in FILE_DATASETS:
        _cls, _opts = _options("dataset", _name)
        globals()[f"TestDataset_{_name}"] = type(f"TestDataset_{_name}", (DatasetConformance,),
                                                 {"dataset": _cls(_opts)})
for _name, (_opts, _infos) in NETWORKS.items():
    _cls, _o = _options("network", _name, **_opts)
    globals()[f"TestNetwork_{_name}"] = type(f"TestNetwork_{_name}", (NetworkConformance,),
                                             {"network": _cls, "options": _o, "infos": _infos})


def _arrays(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(40, 3)).astype(np.float32))
    np.save(tmp_path / "y.npy", rng.integers(0, 4, size=40))


def _images(tmp_path):
    write_image_folder(tmp_path, ("cat", "dog"), size=(10, 12))


class TestDataset_file(DatasetConformance):
    @pytest.fixture(autouse=True)
    def _files(self, tmp_path):
        _arrays(tmp_path)
        self.dataset = REGISTRY.get("dataset", "file").cls(
            REGISTRY.get("dataset", "file").cls.Options(path=str(tmp_path / "x.npy"), labels="y.npy"))


class TestDataset_file_streamed(DatasetConformance):
    @pytest.fixture(autouse=True)
    def _files(self, tmp_path):
        _arrays(tmp_path)
        cls = REGISTRY.get("dataset", "file").cls
        self.dataset = cls(cls.Options(path=str(tmp_path / "x.npy"), labels="y.npy", stream=True))


class TestDataset_image_folder(DatasetConformance):
    @pytest.fixture(autouse=True)
    def _folder(self, tmp_path):
        _images(tmp_path)
        cls = REGISTRY.get("dataset", "image_folder").cls
        self.dataset = cls(cls.Options(path=str(tmp_path), size=8, channels=3, flip=True))


class TestDataset_pairs(DatasetConformance):
    @pytest.fixture(autouse=True)
    def _pairs(self, tmp_path):
        from fmcore.run import pairs

        pairs.write_manifest(tmp_path, {"n": 100, "chunk": 64, "shape": [3], "num_classes": 2})
        g = torch.Generator().manual_seed(0)
        for k, count in enumerate((64, 36)):
            pairs.save_chunk(tmp_path, k, torch.randn(count, 3, generator=g), torch.randn(count, 3, generator=g),
                             torch.arange(count) % 2)
        cls = REGISTRY.get("dataset", "pairs").cls
        self.dataset = cls(cls.Options(path=str(tmp_path)))
        batch = self.dataset.sample(10, torch.Generator().manual_seed(1))
        assert batch.noise.shape == batch.x.shape


class TestDataset_image_folder_streamed(DatasetConformance):
    @pytest.fixture(autouse=True)
    def _folder(self, tmp_path):
        _images(tmp_path)
        cls = REGISTRY.get("dataset", "image_folder").cls
        self.dataset = cls(cls.Options(path=str(tmp_path), size=8, channels=3, flip=True, stream=True, cache=True))


class TestDataset_shards(DatasetConformance):
    @pytest.fixture(autouse=True)
    def _shards(self, tmp_path):
        rng = np.random.default_rng(0)
        for k, n in enumerate((15, 9, 16)):
            np.save(tmp_path / f"s{k}.npy", rng.normal(size=(n, 2, 3)).astype(np.float32))
            np.save(tmp_path / f"s{k}.labels.npy", rng.integers(0, 3, size=n))
        cls = REGISTRY.get("dataset", "shards").cls
        self.dataset = cls(cls.Options(path=str(tmp_path)))


class TestMixtureDataset(DatasetConformance):
    dataset = MixtureDataset(DataInfo((3, 2, 2), num_classes=4))


def test_every_builtin_data_set_and_network_is_checked():
    names = {n for n in globals() if n.startswith("Test")}
    assert {f"TestDataset_{n}" for n in REGISTRY.names("dataset")} <= names
    assert {f"TestNetwork_{n}" for n in REGISTRY.names("network")} <= names
    for name in ("moons", "8gaussians", "checkerboard", "circles", "spirals", "file", "digits", "image_folder"):
        assert f"TestDataset_{name}" in names
    assert {"TestNetwork_mlp", "TestNetwork_unet", "TestNetwork_oracle"} <= names


# -- the kits must fail on wrong data sets -----------------------------------------------------------------
class Broken(Dataset):
    """2D unlabelled points; subclasses break one promise."""

    Options = NoOptions

    def __init__(self, options=None):
        self.options = options

    @property
    def info(self) -> DataInfo:
        return DataInfo((2,))

    def sample(self, n, generator=None) -> Batch:
        return Batch(torch.randn(n, 2, generator=generator))


class WrongShape(Broken):
    def sample(self, n, generator=None):
        return Batch(torch.randn(n, 3, generator=generator))


class Float64(Broken):
    def sample(self, n, generator=None):
        return Batch(torch.randn(n, 2, generator=generator, dtype=torch.float64))


class GlobalRandom(Broken):
    def sample(self, n, generator=None):
        return Batch(torch.randn(n, 2))


class LabelsOutOfRange(Broken):
    @property
    def info(self):
        return DataInfo((2,), num_classes=2)

    def sample(self, n, generator=None):
        return Batch(torch.randn(n, 2, generator=generator), torch.arange(n) % 3)


class LabelsUndeclared(Broken):
    def sample(self, n, generator=None):
        return Batch(torch.randn(n, 2, generator=generator), torch.zeros(n, dtype=torch.long))


class NotItsMixture(Broken):
    def mixture(self):
        return GaussianMixture.isotropic(torch.tensor([[2.0, 0.0]], dtype=torch.float64), 1.0)


class NanValues(ArrayDataset):
    def __init__(self, options=None):
        data = torch.randn(20, 2)
        data[3, 1] = float("nan")
        super().__init__(data)


@pytest.mark.parametrize(("dataset", "message"), [
    (WrongShape(), r"x has shape \(1, 3\), but info.shape = \(2,\)"),
    (Float64(), "x is torch.float64, expected torch.float32"),
    (GlobalRandom(), "advanced the global torch random generator|same seed"),
    (LabelsOutOfRange(), r"labels from 0 to 2, expected 0 .. 1"),
    (LabelsUndeclared(), "labels given, but info.num_classes = 0"),
    (NotItsMixture(), "samples do not follow mixture"),
    (NanValues(), "x has non-finite values"),
])
def test_dataset_kit_rejects_wrong_data_sets(dataset, message):
    with pytest.raises(AssertionError, match=message):
        check_dataset(dataset)


def test_dataset_kit_checks_the_reference_set():
    class BadReference(Broken):
        def reference(self, n, seed):
            return Batch(torch.randn(n + 1, 2))

    with pytest.raises(AssertionError, match=r"reference\(32, 0\): x has shape \(33, 2\)"):
        check_dataset(BadReference())


# -- and on wrong networks ---------------------------------------------------------------------------------
@attrs.define(kw_only=True)
class TinyOptions:
    width: int = 8


class Tiny(Network):
    """Linear in [x, t, one-hot label]; subclasses break one promise."""

    Options = TinyOptions

    def __init__(self, options, info):
        super().__init__(options, info)
        dim = int(np.prod(info.shape))
        self.embed = nn.Embedding(info.num_classes + 1, 4) if info.num_classes else None
        self.linear = nn.Linear(dim + 1 + (4 if info.num_classes else 0), dim)

    def features(self, x, t, cond):
        parts = [x.flatten(1), t[:, None].to(x.dtype)]
        if self.embed is not None:
            cond = torch.full((x.shape[0],), self.info.null_label) if cond is None else cond
            parts.append(self.embed(cond))
        return torch.cat(parts, 1)

    def forward(self, x, t, cond=None):
        return self.linear(self.features(x, t, cond)).view_as(x)


class BatchStatistics(Tiny):
    def forward(self, x, t, cond=None):
        return super().forward(x - x.mean(0, keepdim=True), t, cond)


class NoNullLabel(Tiny):
    def __init__(self, options, info):
        super().__init__(options, info)
        self.embed = nn.Embedding(info.num_classes, 4)


class UnusedLayer(Tiny):
    def __init__(self, options, info):
        super().__init__(options, info)
        self.extra = nn.Linear(3, 3)


class FirstCoordinate(Tiny):
    def forward(self, x, t, cond=None):
        return super().forward(x, t, cond)[:, :1]


class NotTrainable(Tiny):
    trainable = False


class Picky(Tiny):
    @classmethod
    def data_problems(cls, options, info):
        return [] if len(info.shape) == 3 else ["needs images"]


LABELLED = DataInfo((2,), num_classes=3)


@pytest.mark.parametrize(("cls", "check", "message"), [
    (BatchStatistics, check_network_outputs, "changes when 7 more join the batch"),
    (NoNullLabel, check_network_outputs, r"the null label is num_classes = 3\): IndexError"),
    (FirstCoordinate, check_network_outputs, r"output is \(\(1, 1\), torch.float32\); expected a tensor shaped"),
    (UnusedLayer, check_network_gradients, "no finite, non-zero gradient reaches parameter 'extra.weight'"),
    (NotTrainable, check_network_gradients, r"declares trainable = False but has parameters \['embed.weight'"),
])
def test_network_kit_rejects_wrong_networks(cls, check, message):
    network = build_network(cls, TinyOptions(), LABELLED)
    with pytest.raises(AssertionError, match=message):
        check(network, LABELLED)


def test_network_kit_reports_data_problems_and_accepts_a_correct_network():
    check_network(Tiny, TinyOptions(), (DataInfo((2,)), LABELLED, DataInfo((1, 4, 4), 2)))
    with pytest.raises(AssertionError, match=r"data_problems\(.*\) = \['needs images'\]"):
        check_network(Picky, TinyOptions())
