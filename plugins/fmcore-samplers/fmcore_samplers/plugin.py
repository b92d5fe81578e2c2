"""Entry point of the fmcore-samplers package."""

from fmcore import hookimpl
from fmcore_samplers.euler import Euler
from fmcore_samplers.euler_maruyama import EulerMaruyama
from fmcore_samplers.heun import Heun
from fmcore_samplers.langevin import AnnealedLangevin
from fmcore_samplers.pc import PredictorCorrector


@hookimpl
def register_samplers(register):
    register("euler", Euler)
    register("heun", Heun)
    register("euler_maruyama", EulerMaruyama)
    register("langevin", AnnealedLangevin)
    register("pc", PredictorCorrector)
