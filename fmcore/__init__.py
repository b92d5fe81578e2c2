"""fmcore: flow-matching and diffusion generative models from plugins and TOML recipes.

The public interfaces a plugin implements (:class:`ProbabilityPath`, :class:`GaussianPath`,
:class:`Objective`, :class:`Network`, :class:`Sampler`, :class:`Dataset`), the conversion between
parameterizations (:mod:`fmcore.prediction`) and the hook marker :data:`hookimpl`.
"""

from fmcore.dataset import ArrayDataset, Batch, Dataset
from fmcore.errors import FmError
from fmcore.field import Field
from fmcore.hookspecs import hookimpl
from fmcore.network import DataInfo, Network
from fmcore.objective import Objective, ObjectiveOptions, RegressionObjective
from fmcore.path import GaussianPath, PathSample, ProbabilityPath, Schedule
from fmcore.prediction import Prediction, convert
from fmcore.sampler import Sampler, SampleResult, SamplerOptions

__version__ = "0.1.0"

__all__ = [
    "ArrayDataset", "Batch", "DataInfo", "Dataset", "Field", "FmError", "GaussianPath", "Network", "Objective",
    "ObjectiveOptions", "PathSample", "Prediction", "ProbabilityPath", "RegressionObjective", "SampleResult",
    "Sampler", "SamplerOptions", "Schedule", "convert", "hookimpl",
]
