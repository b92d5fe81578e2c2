"""Time grids besides the uniform one (``fmcore.UniformGrid``, registered as 'uniform')."""

from __future__ import annotations

import math

import attrs
import torch
from torch import Tensor

from fmcore import FmError, GaussianPath, ProbabilityPath, TimeGrid, help_field, positive
from fmcore.core.angle import angle_times
from fmcore.core.grid import affine_grid
from fmcore.core.options import OptionValueError


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


def gaussian(path: ProbabilityPath, grid: str) -> GaussianPath:
    """``path`` if it is Gaussian (the recipe check refuses other paths first; a direct call lands here)."""
    if not isinstance(path, GaussianPath):
        raise TypeError(f"the {grid!r} grid needs a Gaussian path; {type(path).__name__} is not one")
    return path


def with_ends(times: Tensor, t_range: tuple[float, float]) -> Tensor:
    """``times`` with the first and last set exactly to the range's ends."""
    times[0], times[-1] = t_range
    return times


def _optional_non_negative(_inst, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None and not (value >= 0 and math.isfinite(value)):
        raise OptionValueError(attribute.name, value, "a finite number >= 0, or leave it out")


#: EDM's sigma range, used where the path's own end is infinite (alpha = 0: CondOT's t = 0) or 0 (beta = 0)
EDM_SIGMA_MAX, EDM_SIGMA_MIN = 80.0, 0.002


@attrs.define(kw_only=True)
class KarrasGridOptions:
    rho: float = help_field(7.0, "EDM exponent: sigma_i^(1/rho) is uniform in i", validator=positive)
    sigma_min: float | None = help_field(None, "sigma = beta/alpha at the schedule's end (default: the path's at "
                                         f"the range's end, or {EDM_SIGMA_MIN:g} where that is 0)",
                                         validator=_optional_non_negative)
    sigma_max: float | None = help_field(None, "sigma at the first point (default: the path's at the range's "
                                         f"start, or {EDM_SIGMA_MAX:g} where that is infinite)",
                                         validator=_optional_non_negative)


class KarrasGrid(TimeGrid):
    """Karras et al. (2022): ``sigma_i = (sigma_max^(1/rho) + i/steps (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``
    in ``sigma = beta / alpha``, mapped to times by the path's inverse schedule; the first and last times are then
    set exactly to the range's ends (so with EDM's 80 / 0.002 standing in for an infinite / zero end, the first and
    last steps reach the true ends)."""

    Options = KarrasGridOptions
    needs_gaussian_path = True

    def times(self, steps: int, t_range: tuple[float, float], path: ProbabilityPath) -> Tensor:
        path = gaussian(path, "karras")
        ends = torch.exp(-path.log_snr(torch.tensor(t_range, dtype=torch.float64)))
        o = self.options
        hi = o.sigma_max if o.sigma_max is not None else float(ends[0])
        hi = EDM_SIGMA_MAX if math.isinf(hi) else hi
        lo = o.sigma_min if o.sigma_min is not None else float(ends[1])
        lo = EDM_SIGMA_MIN if lo == 0.0 else lo
        u = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
        sigma = (hi ** (1 / o.rho) + u * (lo ** (1 / o.rho) - hi ** (1 / o.rho))) ** o.rho
        return with_ends(path.t_from_sigma(sigma).clamp(*t_range), t_range)


@attrs.define(kw_only=True)
class LogSNRGridOptions:
    clip: float = help_field(3.0, "|lambda| bound at 10 steps (measured best of 2, 3, 4, 6 on the bench mixture); "
                             "it grows as clip + log(steps / 10) beyond 10 steps", validator=positive)


class LogSNRGrid(TimeGrid):
    """Equal steps of ``lambda = log(alpha / beta)`` over the range, with lambda clipped to ``[-c, c]``,
    ``c = clip + log(max(steps, 10) / 10)``; ends exactly the range's.

    The clip matters where an end's lambda is infinite (CondOT's t = 0 and t = 1, VP's t = 1) or very large:
    the steps from and to those ends cover the rest. ``c`` grows with ``steps`` so that these end steps shrink
    too (their error falls like ``e^-c``-powers), keeping the samplers' orders on long grids.
    """

    Options = LogSNRGridOptions
    needs_gaussian_path = True

    def times(self, steps: int, t_range: tuple[float, float], path: ProbabilityPath) -> Tensor:
        path = gaussian(path, "logsnr")
        c = self.options.clip + math.log(max(steps, 10) / 10)
        lam = path.log_snr(torch.tensor(t_range, dtype=torch.float64)).clamp(-c, c)
        u = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
        return with_ends(path.t_from_log_snr(lam[0] + u * (lam[1] - lam[0])).clamp(*t_range), t_range)


def _times_list(_inst, attribute: attrs.Attribute, value: list[float]) -> None:
    steps = zip(value[:-1], value[1:], strict=True)
    if len(value) < 2 or any(not 0.0 <= v <= 1.0 for v in value) or any(b <= a for a, b in steps):
        raise OptionValueError(attribute.name, value, "an increasing list of at least 2 times in [0, 1]")


@attrs.define(kw_only=True)
class ExplicitGridOptions:
    times: list[float] = help_field(attrs.Factory(lambda: [0.0, 1.0]), "the grid: increasing times in [0, 1], "
                                    "steps + 1 of them", validator=_times_list)


class ExplicitGrid(TimeGrid):
    """The recipe's own times (``[sampler.grid] name = "times"``, ``times = [0.0, 0.5, 1.0]``), used as given.

    They must number ``steps + 1`` and lie within the field's time range."""

    Options = ExplicitGridOptions

    def times(self, steps: int, t_range: tuple[float, float], path: ProbabilityPath) -> Tensor:
        given = self.options.times
        if len(given) != steps + 1:
            raise FmError(f"[sampler.grid] times: {len(given)} times make {len(given) - 1} steps, but the sampler "
                          f"has steps = {steps}; set steps = {len(given) - 1} (--set sampler.steps="
                          f"{len(given) - 1}) or give {steps + 1} times")
        lo, hi = t_range
        if given[0] < lo or given[-1] > hi:
            raise FmError(f"[sampler.grid] times: from {given[0]} to {given[-1]}, outside the field's time range "
                          f"[{lo}, {hi}] (where the model's prediction can be evaluated); keep the times in it")
        return torch.tensor(given, dtype=torch.float64)
