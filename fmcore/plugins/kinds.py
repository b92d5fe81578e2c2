"""The component kinds: one entry each (its hook, its recipe table, its base class). Adding a kind is one entry
here; the hookspecs, the registry, recipe loading and ``fm recipe schema`` all read this table."""

from __future__ import annotations

import attrs

from fmcore.core.coupling import Coupling
from fmcore.core.dataset import Dataset
from fmcore.core.diffusion import Diffusion
from fmcore.core.features import FeatureExtractor
from fmcore.core.grid import TimeGrid
from fmcore.core.network import Network
from fmcore.core.objective import Objective, ObjectiveOptions
from fmcore.core.path import ProbabilityPath
from fmcore.core.sampler import Sampler, SamplerOptions
from fmcore.core.timedensity import TimeDensity


@attrs.frozen
class Kind:
    """A component kind. ``table``: the recipe's top-level table naming one (None for kinds chosen inside
    another component's table, like ``[sampler.grid]``, or outside recipes, like ``fm eval --features``)."""

    name: str
    hook: str
    base: type
    table: str | None
    what: str
    #: the options class every component of this kind must derive its options from (None: any attrs class)
    options_base: type | None = None
    #: the component a recipe gets when it leaves the table out (None: the table is required)
    default: str | None = None


KIND_LIST = (
    Kind("dataset", "register_datasets", Dataset, "data", "data sets: where training samples come from"),
    Kind("path", "register_paths", ProbabilityPath, "path", "probability paths from noise (t = 0) to data (t = 1)"),
    Kind("objective", "register_objectives", Objective, "objective", "training losses", ObjectiveOptions),
    Kind("network", "register_networks", Network, "network", "networks f(x, t, cond)"),
    Kind("sampler", "register_samplers", Sampler, "sampler", "samplers integrating the field from noise to data",
         SamplerOptions, default="euler"),
    Kind("grid", "register_grids", TimeGrid, None, "time grids of fixed-step samplers ([sampler.grid])"),
    Kind("time_density", "register_time_densities", TimeDensity, None,
         "densities of training times ([objective.time_sampling])"),
    Kind("diffusion", "register_diffusions", Diffusion, None, "SDE diffusions sigma_t ([sampler.diffusion])"),
    Kind("feature", "register_features", FeatureExtractor, None, "feature networks for `fm eval --features` on images"),
    Kind("coupling", "register_couplings", Coupling, "coupling",
         "how training pairs prior draws with data points (independent, minibatch OT)", default="independent"),
)

KINDS: dict[str, Kind] = {k.name: k for k in KIND_LIST}

#: recipe table -> kind, for the kinds a recipe names in a top-level table
RECIPE_TABLES: dict[str, str] = {k.table: k.name for k in KIND_LIST if k.table is not None}

#: hook name -> kind
HOOK_KINDS: dict[str, str] = {k.hook: k.name for k in KIND_LIST}


def kind_named(word: str) -> str | None:
    """The kind called ``word``, or whose recipe table is ``word`` (``data`` -> ``dataset``); None otherwise."""
    if word in KINDS:
        return word
    return RECIPE_TABLES.get(word)
