"""Entry point of the fmcore-samplers package."""

from fmcore import hookimpl
from fmcore_samplers.euler import Euler


@hookimpl
def register_samplers(register):
    register("euler", Euler)
