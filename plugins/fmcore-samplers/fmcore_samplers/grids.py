"""Time grids besides the uniform one (``fmcore.UniformGrid``, registered as 'uniform')."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from fmcore import GaussianPath, ProbabilityPath, TimeGrid, help_field, positive
from fmcore.core.angle import angle_times
from fmcore.core.grid import affine_grid


@attrs.define(kw_only=True)
class DataGridOptions:
    rho: float = help_field(2.0, "exponent: t = 1 - (1 - u)^rho on a uniform u (1 is uniform)", validator=positive)


class DataGrid(TimeGrid):
    """Denser near the data end: ``u_i = 1 - (1 - i / steps)^rho`` mapped onto the time range (Gaussian-mixture
    fields are stiff near t = 1)."""

    Options = DataGridOptions

    def times(self, steps: int, t_range: tuple[float, float], path: ProbabilityPath) -> Tensor:
        u = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
        return affine_grid(1.0 - (1.0 - u) ** self.options.rho, t_range)


class AngleGrid(TimeGrid):
    """Equal steps of ``theta_t = atan2(beta_t, alpha_t)`` (Gaussian paths), found by bisection."""

    needs_gaussian_path = True

    def times(self, steps: int, t_range: tuple[float, float], path: ProbabilityPath) -> Tensor:
        if not isinstance(path, GaussianPath):  # the recipe check refuses this first; a direct call lands here
            raise TypeError(f"the 'angle' grid needs a Gaussian path; {type(path).__name__} is not one")
        return angle_times(path, steps, t_range)
