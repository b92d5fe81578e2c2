"""Image data sets (digits, image_folder, file with labels), feature-space metrics, the classifier cache,
grids and the image side of `fm sample` / `fm eval`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fmcore_datasets.digits import Digits, DigitsOptions, load_digits_split
from fmcore_datasets.file import FileDataset, FileOptions
from fmcore_datasets.image_folder import ImageFolder, ImageFolderOptions
from PIL import Image
from torch import nn

from fmcore.run import features
from fmcore.run.features import (
    CachedClassifier,
    ClassifierRecipe,
    frechet_distance,
    frechet_per_chunk,
    nearest_distances,
)
from fmcore.run.plotting import class_grid


# -- digits -------------------------------------------------------------------------------------------
def test_digits_split_is_fixed_disjoint_and_stratified():
    a = load_digits_split()
    b = load_digits_split()
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    train_x, train_y, test_x, test_y = a
    assert train_x.shape == (1438, 1, 8, 8) and test_x.shape == (359, 1, 8, 8)
    assert float(train_x.min()) == -1.0 and float(train_x.max()) == 1.0
    counts = torch.bincount(test_y, minlength=10)
    assert int(counts.min()) >= 35 and int(counts.max()) <= 37
    flat_train = {tuple(r.tolist()) for r in train_x.flatten(1)}
    overlap = sum(tuple(r.tolist()) in flat_train for r in test_x.flatten(1))
    assert overlap < 5  # the UCI set has a few duplicate images across writers, never the same index


def test_digits_reference_is_held_out():
    d = Digits(DigitsOptions())
    assert d.info.shape == (1, 8, 8) and d.info.num_classes == 10 and len(d) == 1438
    ref = d.reference(100, seed=0)
    held = {tuple(r.tolist()) for r in d.held_out.x.flatten(1)}
    assert all(tuple(r.tolist()) in held for r in ref.x.flatten(1))
    assert len({tuple(r.tolist()) for r in d.reference(359, seed=1).x.flatten(1)}) >= 355  # no replacement
    batch = d.sample(32, torch.Generator().manual_seed(0))
    assert batch.labels.shape == (32,) and batch.labels.dtype == torch.long
    everything = Digits(DigitsOptions(split="all"))
    assert len(everything) == 1797 and everything.held_out is None


# -- image_folder ---------------------------------------------------------------------------------------
def _folder(tmp_path):
    root = tmp_path / "images"
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    rgb = np.zeros((20, 30, 3), dtype=np.uint8)
    rgb[:, :15, 0] = 255  # left half red, right half black
    Image.fromarray(rgb).save(root / "cats" / "a.png")
    Image.fromarray(np.full((16, 16), 255, np.uint8), mode="L").save(root / "cats" / "b.jpg", quality=95)
    Image.fromarray(np.full((12, 8, 3), 128, np.uint8)).save(root / "dogs" / "c.jpeg")
    (root / "dogs" / ".DS_Store").write_bytes(b"ignored")
    return root


def test_image_folder_decodes_resizes_and_labels(tmp_path):
    root = _folder(tmp_path)
    ds = ImageFolder(ImageFolderOptions(path=str(root), size=8, channels=3))
    assert ds.info.shape == (3, 8, 8) and ds.info.num_classes == 2 and ds.class_names == ["cats", "dogs"]
    assert ds.labels.tolist() == [0, 0, 1]
    red = ds.data[0]
    assert float(red.min()) >= -1.0 and float(red.max()) <= 1.0
    assert float(red[0, :, 0].min()) > 0.9 and float(red[0, :, -1].max()) < -0.9  # centre crop kept both halves
    assert torch.allclose(ds.data[1], torch.ones(3, 8, 8), atol=0.02)  # white grayscale JPEG -> RGB
    gray = ImageFolder(ImageFolderOptions(path=str(root), size=4, channels=1, classes=False))
    assert gray.info.shape == (1, 4, 4) and gray.info.num_classes == 0 and gray.labels is None


def test_image_folder_flip_uses_the_generator(tmp_path):
    ds = ImageFolder(ImageFolderOptions(path=str(_folder(tmp_path)), size=8, flip=True))
    a = ds.sample(64, torch.Generator().manual_seed(1)).x
    b = ds.sample(64, torch.Generator().manual_seed(1)).x
    assert torch.equal(a, b)
    reds = a[a[:, 0].mean((1, 2)) < 0.5]  # the red/black image, in either orientation
    left = reds[:, 0, :, 0] > 0.9
    assert bool(left.any()) and bool((~left).any())


def test_image_folder_reports_corrupt_files_by_name(tmp_path, write_recipe, fm):
    root = _folder(tmp_path)
    (root / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "dogs" / "notes.txt").write_text("hello")
    with pytest.raises(ValueError) as info:
        ImageFolder(ImageFolderOptions(path=str(root), size=8))
    msg = str(info.value)
    assert "2 of 5 files" in msg and "dogs/broken.png" in msg and "dogs/notes.txt" in msg
    recipe = write_recipe(f'[data]\nname = "image_folder"\npath = "{root}"\nsize = 8\n[path]\nname = "condot"\n'
                          '[objective]\nname = "cfm"\n[network]\nname = "unet"\nchannel_mult = [1, 2]\n')
    code, _out, err = fm("recipe", "check", recipe)
    assert code == 2 and "dogs/broken.png" in err


# -- file with labels ----------------------------------------------------------------------------------
def test_file_dataset_with_labels(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 1, 4, 4)).astype(np.float32)
    y = np.arange(20) % 3
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    ds = FileDataset(FileOptions(path=str(tmp_path / "x.npy"), labels="y.npy"))
    assert ds.info.shape == (1, 4, 4) and ds.info.num_classes == 3
    batch = ds.sample(50, torch.Generator().manual_seed(0))
    idx = [int(np.flatnonzero((x.reshape(20, -1) == r.numpy().ravel()).all(1))[0]) for r in batch.x]
    assert batch.labels.tolist() == [int(y[i]) for i in idx]
    np.save(tmp_path / "bad.npy", np.arange(19))
    with pytest.raises(ValueError, match="expected 20 integers"):
        FileDataset(FileOptions(path=str(tmp_path / "x.npy"), labels="bad.npy"))


# -- metrics --------------------------------------------------------------------------------------------
def test_frechet_distance_matches_the_closed_form():
    g = np.random.default_rng(0)
    a = g.normal(size=(4000, 3))
    b = g.normal(size=(4000, 3)) * 2.0 + np.array([1.0, 0.0, 0.0])
    # N(0, I) vs N(m, 4 I): |m|^2 + tr(I + 4I - 2 * 2I) = 1 + 3
    assert abs(frechet_distance(a, b) - 4.0) < 0.25
    assert abs(frechet_distance(a, a)) < 1e-8
    from scipy.linalg import sqrtm

    c = g.normal(size=(500, 4)) @ g.normal(size=(4, 4))
    d = g.normal(size=(500, 4)) @ g.normal(size=(4, 4)) + 0.3
    sa, sd = np.cov(c, rowvar=False), np.cov(d, rowvar=False)
    ref = ((c.mean(0) - d.mean(0)) ** 2).sum() + np.trace(sa + sd - 2 * sqrtm(sa @ sd).real)
    assert abs(frechet_distance(c, d) - ref) < 1e-6 * max(1.0, ref)


def test_frechet_per_chunk_uses_disjoint_equal_chunks():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(2000, 2, generator=g)
    near, far = torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g) + 3.0
    rest = torch.randn(499, 2, generator=g) + 10.0  # a short last chunk: left out
    fds = frechet_per_chunk(torch.cat([near, far, rest]), ref, 500)
    assert fds == [frechet_distance(near, ref), frechet_distance(far, ref)]
    assert fds[0] < 0.05 and abs(fds[1] - 18.0) < 1.0  # |(3, 3)|^2 = 18, same covariance


def test_nearest_distances():
    a = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    b = torch.tensor([[0.0, 1.0], [3.0, 0.0], [6.0, 8.0]])
    assert nearest_distances(a, b).tolist() == [1.0, 4.0]


class Tiny(CachedClassifier):
    """A tiny classifier for the cache tests."""

    Options = type("TinyOptions", (), {})
    num_classes = 2
    epochs = 2

    def recipe(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 1, 4, 4, generator=g)
        y = (x.mean((1, 2, 3)) > 0).long()
        return ClassifierRecipe("tiny", lambda: _TinyNet(), x, y, x[:16], y[:16], epochs=self.epochs, batch_size=16)


class _TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.f, self.head = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.SiLU()), nn.Linear(8, 2)

    def forward(self, x):
        f = self.f(x)
        return f, self.head(f)


def test_classifier_cache_respects_xdg_and_recipe_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = Tiny(None)
    f1, logits = first.features_and_logits(torch.randn(5, 1, 4, 4))
    assert f1.shape == (5, 8) and logits.shape == (5, 2)
    assert first.weights_path.parent == tmp_path / "cache" / "fmcore" / "features"
    again = Tiny(None)
    again.model()
    assert again.weights_path == first.weights_path
    assert all(torch.equal(p, q) for p, q in zip(first.model().state_dict().values(),
                                                 again.model().state_dict().values(), strict=True))
    retrained = features.train_classifier(Tiny(None).recipe())[0]  # deterministic: same weights uncached
    assert all(torch.equal(p, q) for p, q in zip(first.model().state_dict().values(),
                                                 retrained.state_dict().values(), strict=True))
    other = Tiny(None)
    other.epochs = 3
    other.model()
    assert other.weights_path != first.weights_path  # another recipe never reuses stale weights
    first.weights_path.write_bytes(b"damaged")
    repaired = Tiny(None)
    repaired.model()
    assert repaired.weights_path.stat().st_size > 100


def test_class_grid_writes_one_row_per_class(tmp_path):
    images = torch.rand(30, 1, 8, 8) * 2 - 1
    labels = torch.arange(30) % 3
    class_grid(images, labels, tmp_path / "grid.png", per_class=4)
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.ndim == 3 and grid.shape[0] > 50


def tiny_digits_recipe(objective: str = "", network: str = "", sampler: str = "") -> str:
    """A two-step CondOT + CFM recipe on digits with a tiny UNet; extra lines go into the named tables."""
    return (f'[data]\nname = "digits"\n[path]\nname = "condot"\n[objective]\nname = "cfm"\n{objective}\n'
            f'[network]\nname = "unet"\nchannels = 4\nchannel_mult = [1, 2]\nblocks_per_level = 1\n'
            f'attention_levels = []\n{network}\n[sampler]\nname = "euler"\nsteps = 2\n{sampler}\n'
            '[train]\nsteps = 2\nbatch_size = 8\nlog_every = 1\n')


def test_fm_sample_class_on_an_unconditional_model_is_an_error(tmp_path, write_recipe, fm):
    recipe = write_recipe(tiny_digits_recipe(network="num_classes = 0"))
    run = tmp_path / "run"
    assert fm("train", recipe, "--run-dir", run)[0] == 0
    code, _out, err = fm("sample", run, "--n", "8", "--out", tmp_path / "s.npy", "--class", "3")
    assert code == 2 and "unconditional" in err
    code, _out, err = fm("sample", run, "--n", "8", "--out", tmp_path / "s.npy", "--guidance", "2")
    assert code == 2 and "--guidance needs --class" in err
    code, out, _err = fm("sample", run, "--n", "8", "--out", tmp_path / "s.npy", "--plot", tmp_path / "g.png")
    assert code == 0 and np.load(tmp_path / "s.npy").shape == (8, 1, 8, 8) and (tmp_path / "g.png").is_file()


def test_conditional_sample_grid_and_image_eval(tmp_path, write_recipe, fm, monkeypatch):
    import attrs
    from fmcore_datasets import digits

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    quick = digits.DigitsFeatures.recipe
    monkeypatch.setattr(digits.DigitsFeatures, "recipe", lambda self: attrs.evolve(quick(self), epochs=1))
    recipe = write_recipe(tiny_digits_recipe(objective="cond_dropout = 0.2", sampler="guidance = 1.5"))
    run = tmp_path / "run"
    assert fm("train", recipe, "--run-dir", run)[0] == 0
    code, out, err = fm("sample", run, "--n", "130", "--batch-size", "64", "--class", "all", "--out",
                        tmp_path / "s.npy", "--plot", tmp_path / "grid.png")
    assert code == 0, err
    assert "guidance 1.5" in out and (tmp_path / "grid.png").is_file()
    assert np.load(tmp_path / "s.labels.npy").tolist() == [i % 10 for i in range(130)]
    code, _out, err = fm("sample", run, "--n", "8", "--class", "12", "--out", tmp_path / "t.npy")
    assert code == 2 and "classes are 0 .. 9" in err
    code, out, err = fm("eval", run, "--n", "100", "--json", "--guidance", "2")
    assert code == 0, err
    r = __import__("json").loads(out)
    assert r["guidance"] == 2.0 and r["reference"] == 359 and r["compared"] == 100
    assert r["fd"] > 0 and r["fd_floor"] > 0 and len(r["accuracy_per_class"]) == 10
    assert r["chunks"] == 1 and r["fd_range"] == [r["fd"], r["fd"]] and r["floor_draws"] == 8
    assert r["fd_floor_range"][0] <= r["fd_floor"] <= r["fd_floor_range"][1]
    assert 0 < r["nn_ratio"] and r["features"] == "digits"
    code, out, err = fm("eval", run, "--n", "100")
    assert code == 0 and "Fréchet distance (digits)" in out and "accuracy on the class asked for" in out
    assert "mean over 1 chunk(s) of 100 samples; floor: mean over 8 draws" in out
