"""A conformance kit: checks a plugin author runs in their own test suite against their own component.

Subclass one of the base classes in a test module (pytest collects the ``test_*`` methods)::

    from fmcore.testing import PathConformance, SamplerConformance
    from my_plugin.cosine import CosinePath
    from my_plugin.midpoint import Midpoint

    class TestCosinePath(PathConformance):
        path = CosinePath(CosinePath.Options())

    class TestMidpoint(SamplerConformance):
        sampler = Midpoint(Midpoint.Options(steps=50))

or call the ``check_*`` functions directly (each raises ``AssertionError`` saying what is wrong).

What is checked (one module each):

* paths (:mod:`.paths`): the endpoints (``p_0`` is the prior, ``p_1`` concentrates at the data), the
  conditional velocity against the time derivative of the conditional flow (autograd), the conditional score
  against the gradient of the log-density (autograd), a strictly increasing signal-to-noise ratio and no end
  that is singular in practice, shapes for vector and image data, float32/float64 and devices; the identities
  also at option values drawn from the options' own validators (:mod:`.variants`);
* objectives (:mod:`.objectives`): zero loss for a network returning the exact target, the target against
  the path's own conditional quantities, gradients reaching every network parameter;
* samplers (:mod:`.samplers`): reproducibility (samples do not depend on the batch size; the global RNG is
  untouched), shapes and finite samples on exact fields (one of them singular at the data end), the reported
  NFE against counted network evaluations, the declared needs (no score, no Gaussian path) against what the
  sampler uses, and convergence to the data distribution on an exact (oracle) field;
* data sets (:mod:`.datasets`): ``info`` against the batches ``sample`` and ``reference`` return, seeding,
  finite values, the declared exact law;
* networks (:mod:`.networks`): outputs shaped like x (labels and the null label included), no dependence on
  the rest of the batch, gradients reaching every parameter, ``trainable = False`` meaning no parameters.

The kit imports only :mod:`fmcore.core` (and torch, attrs), so it checks a component without the recipe,
training or command-line layers.
"""

from fmcore.testing.common import (
    DEFAULT_SHAPES,
    IMAGE_SHAPE,
    MIXTURE_MEANS,
    MIXTURE_STD,
    MIXTURE_WEIGHTS,
    SINGULAR_PATH,
    VECTOR_SHAPE,
    ReferencePath,
    ReferencePathOptions,
    declared,
    devices,
    exact_field,
    exact_fields,
    mixture_for,
)
from fmcore.testing.datasets import (
    DatasetConformance,
    MixtureDataset,
    check_batch,
    check_dataset,
    check_dataset_info,
    check_dataset_mixture,
    check_dataset_reference,
    check_dataset_samples,
    check_dataset_seeding,
)
from fmcore.testing.install import fake_install
from fmcore.testing.networks import (
    DEFAULT_INFOS,
    NetworkConformance,
    build_network,
    check_network,
    check_network_gradients,
    check_network_outputs,
)
from fmcore.testing.objectives import (
    ExactTargetNetwork,
    ObjectiveConformance,
    TinyNetwork,
    check_objective,
    check_objective_exact_target,
    check_objective_gradients,
    check_objective_target,
    exact_target,
)
from fmcore.testing.paths import (
    SINGULAR_FRACTION,
    PathConformance,
    check_path,
    check_path_dtypes,
    check_path_endpoints,
    check_path_ends,
    check_path_identities,
    check_path_lean_coefficients,
    check_path_options,
    check_path_score,
    check_path_shapes,
    check_path_snr,
    check_path_variants,
    check_path_velocity,
    gaussian_log_prob,
    path_variants,
)
from fmcore.testing.samplers import (
    CountingNetwork,
    OpaquePath,
    SamplerConformance,
    ScorelessField,
    check_sampler,
    check_sampler_convergence,
    check_sampler_declared_needs,
    check_sampler_nfe,
    check_sampler_reproducible,
    check_sampler_shapes,
    declared_needs,
    draw,
    few_steps,
)
from fmcore.testing.variants import candidates, option_variants

__all__ = [
    "DEFAULT_INFOS", "DEFAULT_SHAPES", "IMAGE_SHAPE", "MIXTURE_MEANS", "MIXTURE_STD", "MIXTURE_WEIGHTS",
    "SINGULAR_FRACTION", "SINGULAR_PATH", "VECTOR_SHAPE",
    "CountingNetwork", "DatasetConformance", "ExactTargetNetwork", "MixtureDataset", "NetworkConformance",
    "ObjectiveConformance", "OpaquePath", "PathConformance", "ReferencePath", "ReferencePathOptions",
    "SamplerConformance", "ScorelessField", "TinyNetwork",
    "build_network", "candidates", "check_batch", "check_dataset", "check_dataset_info", "check_dataset_mixture",
    "check_dataset_reference", "check_dataset_samples", "check_dataset_seeding", "check_network",
    "check_network_gradients", "check_network_outputs", "check_objective", "check_objective_exact_target",
    "check_objective_gradients", "check_objective_target", "check_path", "check_path_dtypes",
    "check_path_endpoints", "check_path_ends", "check_path_identities", "check_path_lean_coefficients",
    "check_path_options", "check_path_score",
    "check_path_shapes", "check_path_snr", "check_path_variants", "check_path_velocity", "check_sampler",
    "check_sampler_convergence", "check_sampler_declared_needs", "check_sampler_nfe", "check_sampler_reproducible",
    "check_sampler_shapes", "declared", "declared_needs", "devices", "draw", "exact_field", "exact_fields",
    "exact_target", "fake_install", "few_steps", "gaussian_log_prob", "mixture_for", "option_variants",
    "path_variants",
]
