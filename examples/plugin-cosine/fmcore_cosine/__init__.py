"""fmcore-cosine: the cosine path and the explicit midpoint sampler, as a third-party fmcore plugin."""

from fmcore_cosine.cosine import CosineOptions, CosinePath
from fmcore_cosine.midpoint import Midpoint

__all__ = ["CosineOptions", "CosinePath", "Midpoint"]
