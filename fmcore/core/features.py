"""Feature components: networks mapping images [N, C, H, W] in [-1, 1] to feature vectors [N, d] (and, for a
classifier, to class logits). ``fm eval`` on images uses one (registered with the ``register_features`` hook, kind
``"feature"``) to report a Fréchet distance, classifier accuracy and a memorisation signal
(:mod:`fmcore.run.features`, docs/images.md)."""

from __future__ import annotations

import abc
from typing import ClassVar

from torch import Tensor


class FeatureExtractor(abc.ABC):
    """Base class of feature components: images [N, C, H, W] in [-1, 1] -> features [N, d] (and logits)."""

    Options: ClassVar[type]
    #: number of classes the extractor classifies into (0: features only)
    num_classes: ClassVar[int] = 0

    def __init__(self, options):
        self.options = options

    @abc.abstractmethod
    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(features [N, d], logits [N, num_classes] or None)`` for images ``x`` on the CPU."""

    def describe(self) -> dict[str, float | str]:
        """Facts worth reporting beside the metrics (e.g. the classifier's held-out accuracy)."""
        return {}
