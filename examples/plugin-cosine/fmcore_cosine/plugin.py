"""Entry point of fmcore-cosine: one hook per component kind, each given a ``register(name, cls)`` callback."""

from fmcore import hookimpl
from fmcore_cosine.cosine import CosinePath
from fmcore_cosine.midpoint import Midpoint


@hookimpl
def register_paths(register):
    register("cosine", CosinePath)


@hookimpl
def register_samplers(register):
    register("midpoint", Midpoint)
