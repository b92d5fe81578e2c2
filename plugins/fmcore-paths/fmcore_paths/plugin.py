"""Entry point of the fmcore-paths package."""

from fmcore import hookimpl
from fmcore_paths.condot import CondOTPath
from fmcore_paths.ve import VEPath
from fmcore_paths.vp import VPPath


@hookimpl
def register_paths(register):
    register("condot", CondOTPath)
    register("vp", VPPath)
    register("ve", VEPath)
