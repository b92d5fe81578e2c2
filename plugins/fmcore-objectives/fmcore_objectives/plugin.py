"""Entry point of the fmcore-objectives package."""

from fmcore import hookimpl
from fmcore_objectives.objectives import CFM, DDPM, DSM


@hookimpl
def register_objectives(register):
    register("cfm", CFM)
    register("dsm", DSM)
    register("ddpm", DDPM)
