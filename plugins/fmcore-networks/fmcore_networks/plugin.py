"""Entry point of the fmcore-networks package."""

from fmcore import hookimpl
from fmcore_networks.mlp import MLP


@hookimpl
def register_networks(register):
    register("mlp", MLP)
