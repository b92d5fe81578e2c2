"""Entry point of the fmcore-objectives package: objectives and training-time densities."""

from fmcore import UniformTimes, hookimpl
from fmcore_objectives.objectives import CFM, DDPM, DSM
from fmcore_objectives.timedensities import LogitNormal


@hookimpl
def register_objectives(register):
    register("cfm", CFM)
    register("dsm", DSM)
    register("ddpm", DDPM)


@hookimpl
def register_time_densities(register):
    register("uniform", UniformTimes)
    register("logit_normal", LogitNormal)
