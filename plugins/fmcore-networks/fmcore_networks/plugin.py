"""Entry point of the fmcore-networks package."""

from fmcore import hookimpl
from fmcore_networks.mlp import MLP
from fmcore_networks.oracle import OracleNetwork
from fmcore_networks.unet import UNet


@hookimpl
def register_networks(register):
    register("mlp", MLP)
    register("oracle", OracleNetwork)
    register("unet", UNet)
