"""Entry point of the fmcore-samplers package: samplers, time grids and diffusions."""

from fmcore import PathDiffusion, UniformGrid, hookimpl
from fmcore_samplers.adams import Adams
from fmcore_samplers.ddim import DDIM
from fmcore_samplers.diffusions import ConstantDiffusion, ZeroDiffusion
from fmcore_samplers.dopri5 import Dopri5
from fmcore_samplers.dpm_solver_pp import DPMSolverPP
from fmcore_samplers.edm import EDM
from fmcore_samplers.euler import Euler
from fmcore_samplers.euler_maruyama import EulerMaruyama
from fmcore_samplers.grids import AngleGrid, DataGrid, ExplicitGrid, KarrasGrid, LogSNRGrid
from fmcore_samplers.heun import Heun
from fmcore_samplers.langevin import AnnealedLangevin
from fmcore_samplers.pc import PredictorCorrector
from fmcore_samplers.rk4 import RK4
from fmcore_samplers.unipc import UniPC


@hookimpl
def register_samplers(register):
    register("euler", Euler)
    register("heun", Heun)
    register("euler_maruyama", EulerMaruyama)
    register("langevin", AnnealedLangevin)
    register("pc", PredictorCorrector)
    register("ddim", DDIM)
    register("dpm_solver_pp", DPMSolverPP)
    register("unipc", UniPC)
    register("edm", EDM)
    register("dopri5", Dopri5)
    register("rk4", RK4)
    register("adams", Adams)


@hookimpl
def register_grids(register):
    register("uniform", UniformGrid)
    register("data", DataGrid)
    register("angle", AngleGrid)
    register("karras", KarrasGrid)
    register("logsnr", LogSNRGrid)
    register("times", ExplicitGrid)


@hookimpl
def register_diffusions(register):
    register("path", PathDiffusion)
    register("constant", ConstantDiffusion)
    register("zero", ZeroDiffusion)
