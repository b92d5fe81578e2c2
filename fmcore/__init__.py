"""fmcore: flow-matching and diffusion generative models from plugins and TOML recipes.

Two audiences, one import:

- **Users** (notebooks, scripts): ``load_recipe``, ``train``, ``load_run`` (a :class:`~fmcore.api.Run` with
  ``.sample()``, ``.field()``, ``.evaluate()``) and ``make_oracle_run``; the ``fm`` command line is a thin layer
  over them. They are imported on first use, so ``import fmcore`` stays light.
- **Plugin authors**: the interfaces (:class:`ProbabilityPath`, :class:`GaussianPath`, :class:`Objective`,
  :class:`Network`, :class:`Sampler`, :class:`Dataset`, :class:`TimeGrid`, :class:`TimeDensity`,
  :class:`Diffusion`), the option helpers, the conversion between parameterizations and :data:`hookimpl`.
  Everything a plugin needs is importable from ``fmcore`` itself, whatever the internal layout.
"""

from fmcore.core.coupling import Coupling, Independent, StoredPairs
from fmcore.core.dataset import ArrayDataset, Batch, Dataset, MapDataset
from fmcore.core.diffusion import Diffusion, PathDiffusion, reverse_diffusion_sq
from fmcore.core.errors import FmError
from fmcore.core.field import Field
from fmcore.core.grid import TimeGrid, UniformGrid, affine_grid
from fmcore.core.likelihood import LikelihoodOptions, LogDensity, log_prob
from fmcore.core.network import DataInfo, Network
from fmcore.core.noise import BatchNoise
from fmcore.core.objective import Objective, ObjectiveOptions, RegressionObjective
from fmcore.core.options import (
    Choice,
    NoOptions,
    OptionValueError,
    help_field,
    in_range,
    nested,
    non_negative,
    one_of,
    positive,
    positive_ints,
)
from fmcore.core.oracle import GaussianMixture, oracle_field
from fmcore.core.path import GaussianPath, PathSample, ProbabilityPath, Schedule
from fmcore.core.prediction import Prediction, convert
from fmcore.core.sampler import Needs, Sampler, SampleResult, SamplerOptions, euler_step
from fmcore.core.tensors import as_time, expand_like
from fmcore.core.timedensity import TimeDensity, UniformTimes
from fmcore.plugins.hookspecs import hookimpl

__version__ = "0.2.0"

#: the Python API, imported on first use (fmcore.api pulls in accelerate and the training loop)
_API = ("load_recipe", "train", "load_run", "make_oracle_run", "Run", "build", "choice", "reflow")


def __getattr__(name: str):
    if name in _API:
        from fmcore import api

        return getattr(api, name)
    raise AttributeError(f"module 'fmcore' has no attribute {name!r}")


__all__ = [
    "ArrayDataset", "Batch", "BatchNoise", "Choice", "DataInfo", "Dataset", "Diffusion", "Field", "FmError",
    "MapDataset",
    "GaussianMixture", "GaussianPath", "Needs", "Network", "NoOptions", "Objective", "ObjectiveOptions",
    "OptionValueError", "PathDiffusion", "PathSample", "Prediction", "ProbabilityPath", "RegressionObjective",
    "SampleResult", "Sampler", "SamplerOptions", "Schedule", "TimeDensity", "TimeGrid", "UniformGrid", "UniformTimes",
    "affine_grid", "as_time", "convert", "euler_step", "expand_like", "help_field", "hookimpl", "in_range", "nested",
    "non_negative", "one_of", "oracle_field", "positive", "positive_ints", "reverse_diffusion_sq", *_API,
    "Coupling", "Independent", "StoredPairs",
]
__all__ += ["LikelihoodOptions", "LogDensity", "log_prob"]
