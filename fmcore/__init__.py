"""fmcore: flow-matching and diffusion generative models from plugins and TOML recipes.

The public interfaces a plugin implements (:class:`ProbabilityPath`, :class:`GaussianPath`,
:class:`Objective`, :class:`Network`, :class:`Sampler`, :class:`Dataset`), the conversion between
parameterizations (:mod:`fmcore.core.prediction`) and the hook marker :data:`hookimpl`.
"""

from fmcore.core.dataset import ArrayDataset, Batch, Dataset
from fmcore.core.errors import FmError
from fmcore.core.field import Field
from fmcore.core.network import DataInfo, Network
from fmcore.core.objective import Objective, ObjectiveOptions, RegressionObjective
from fmcore.core.path import GaussianPath, PathSample, ProbabilityPath, Schedule
from fmcore.core.prediction import Prediction, convert
from fmcore.core.sampler import Sampler, SampleResult, SamplerOptions
from fmcore.plugins.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "ArrayDataset", "Batch", "DataInfo", "Dataset", "Field", "FmError", "GaussianPath", "Network", "Objective",
    "ObjectiveOptions", "PathSample", "Prediction", "ProbabilityPath", "RegressionObjective", "SampleResult",
    "Sampler", "SamplerOptions", "Schedule", "convert", "hookimpl",
]
