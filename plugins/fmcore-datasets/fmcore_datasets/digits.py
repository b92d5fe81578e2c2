"""scikit-learn's handwritten digits (UCI optdigits test set): 1,797 grayscale 8 x 8 images, 10 classes.

Pixels 0..16 are mapped to [-1, 1] (``x / 8 - 1``); samples are [1, 8, 8] with labels 0..9.

The fixed split: within each class, the images are put in the order of a permutation drawn from
``numpy.random.default_rng(0)``, and the first ``round(0.2 * count)`` of each class are held out: 359 test
images (35 to 37 per class; the classes hold 174 to 183 images) and 1,438 training images. ``split =
"train"`` (the default) trains on the 1,438 and :meth:`Digits.reference` returns held-out images;
``split = "all"`` trains on all 1,797 (then there is no held-out set and references are training images).

The feature network for ``fm eval`` (registered as feature ``digits``) is a small CNN classifier trained
on the training split by fmcore itself, deterministically, and cached (see :mod:`fmcore.run.features`).
"""

from __future__ import annotations

import attrs
import numpy as np
import torch
from torch import Tensor, nn

from fmcore import ArrayDataset, Batch
from fmcore.core.options import help_field, one_of, positive
from fmcore.run.features import CachedClassifier, ClassifierRecipe

TEST_FRACTION = 0.2
SPLIT_SEED = 0


@attrs.define(kw_only=True)
class DigitsOptions:
    split: str = help_field("train", "'train': the fixed 1,438-image training split (359 held out); 'all': all "
                            "1,797 images", validator=one_of(("train", "all")))


def load_digits_split() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(train_x, train_y, test_x, test_y)``: images [N, 1, 8, 8] in [-1, 1] and int64 labels, fixed split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy(d.images.astype(np.float32) / 8.0 - 1.0)[:, None]
    labels = torch.from_numpy(d.target.astype(np.int64))
    rng = np.random.default_rng(SPLIT_SEED)
    test = np.zeros(len(labels), dtype=bool)
    for k in range(10):
        idx = np.flatnonzero(d.target == k)
        idx = idx[rng.permutation(len(idx))]
        test[idx[: round(TEST_FRACTION * len(idx))]] = True
    test_t = torch.from_numpy(test)
    return images[~test_t], labels[~test_t], images[test_t], labels[test_t]


class Digits(ArrayDataset):
    """scikit-learn's 8 x 8 handwritten digits in [-1, 1] with labels 0-9 (fixed 1,438 / 359 split)."""

    Options = DigitsOptions

    def __init__(self, options: DigitsOptions):
        self.options = options
        train_x, train_y, test_x, test_y = load_digits_split()
        if options.split == "all":
            train_x, train_y = torch.cat([train_x, test_x]), torch.cat([train_y, test_y])
            self.held_out: Batch | None = None
        else:
            self.held_out = Batch(test_x, test_y)
        super().__init__(train_x, train_y, num_classes=10)

    def bin_width(self) -> float:
        """Pixels take 17 levels 0..16, mapped by ``x / 8 - 1``: bins of 1/8 in [-1, 1]."""
        return 1.0 / 8.0

    def reference(self, n: int, seed: int) -> Batch:
        """``n`` held-out images (without replacement up to all 359, else with), or training images for
        ``split = "all"``."""
        if self.held_out is None:
            return super().reference(n, seed)
        g = torch.Generator().manual_seed(seed)
        m = self.held_out.x.shape[0]
        idx = torch.randperm(m, generator=g)[:n] if n <= m else torch.randint(m, (n,), generator=g)
        return Batch(self.held_out.x[idx], self.held_out.labels[idx])


class DigitsCNN(nn.Module):
    """conv 32 -> conv 64 (stride 2) -> conv 64 (stride 2) -> 64 features -> 10 logits."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.SiLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.SiLU(),
            nn.Flatten(), nn.Linear(64 * 2 * 2, 64), nn.SiLU(),
        )
        self.head = nn.Linear(64, 10)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.body(x)
        return f, self.head(f)


@attrs.define(kw_only=True)
class DigitsFeatureOptions:
    epochs: int = help_field(20, "training epochs of the classifier", validator=positive)


class DigitsFeatures(CachedClassifier):
    """A small CNN classifier of the digits training split; features are its 64-unit penultimate layer."""

    Options = DigitsFeatureOptions
    num_classes = 10

    def recipe(self) -> ClassifierRecipe:
        train_x, train_y, test_x, test_y = load_digits_split()
        return ClassifierRecipe(name="digits-cnn-v1", build=DigitsCNN, train_x=train_x, train_y=train_y,
                                test_x=test_x, test_y=test_y, epochs=self.options.epochs, batch_size=64, lr=2e-3,
                                seed=0, shift=1)
