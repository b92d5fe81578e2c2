"""Entry point of the fmcore-objectives package: objectives, training-time densities and couplings."""

from fmcore import Independent, StoredPairs, UniformTimes, hookimpl
from fmcore_objectives.couplings import ExactOT, Sinkhorn
from fmcore_objectives.objectives import CFM, DDPM, DSM
from fmcore_objectives.ssm import SSM
from fmcore_objectives.timedensities import LogitNormal, Point, Power


@hookimpl
def register_objectives(register):
    register("cfm", CFM)
    register("dsm", DSM)
    register("ddpm", DDPM)
    register("ssm", SSM)


@hookimpl
def register_time_densities(register):
    register("uniform", UniformTimes)
    register("logit_normal", LogitNormal)
    register("power", Power)
    register("point", Point)


@hookimpl
def register_couplings(register):
    register("independent", Independent)
    register("ot", ExactOT)
    register("sinkhorn", Sinkhorn)
    register("pairs", StoredPairs)
