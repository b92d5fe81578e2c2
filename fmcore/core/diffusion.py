"""Diffusions ``sigma_t`` of the SDEs that share the probability-flow ODE's marginals (docs/samplers.md):

    dX = [u_t(X) + sigma_t^2 / 2 * grad log p_t(X)] dt + sigma_t dW.

A component (kind ``diffusion``, recipe table ``[sampler.diffusion]``): a plugin adds one without touching
the core. The path's own reverse-SDE diffusion is

    g(t)^2 = -alpha^2 d/dt (beta^2 / alpha^2) = 2 beta^2 (d_alpha / alpha - d_beta / beta),

``b(1 - t)`` on VP, ``d[sigma^2]/ds`` at ``s = 1 - t`` on VE, ``2 (1 - t) / t`` on CondOT (infinite at t = 0).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import attrs
from torch import Tensor

from fmcore.core.options import help_field, non_negative
from fmcore.core.path import Schedule


def reverse_diffusion_sq(s: Schedule) -> Tensor:
    """``g(t)^2 = 2 beta^2 d_alpha / alpha - 2 beta d_beta`` (``+inf`` where alpha = 0, e.g. CondOT at t = 0), with
    the path's finite product ``beta d_beta`` (VP at t = 1: ``g^2 = 2 alpha d_alpha = b(0)``)."""
    return 2 * s.beta**2 * s.d_alpha / s.alpha - 2 * s.beta_d_beta


class Diffusion(abc.ABC):
    """Base class of diffusions. ``needs_gaussian_path``: reads the path's schedule; ``is_zero``: sigma = 0
    everywhere (the SDE is the probability-flow ODE and needs no score)."""

    Options: ClassVar[type]
    needs_gaussian_path: ClassVar[bool] = False
    is_zero: ClassVar[bool] = False

    def __init__(self, options):
        self.options = options

    @abc.abstractmethod
    def sigma_sq(self, s: Schedule) -> Tensor:
        """``sigma_t^2`` at the schedule ``s`` (shaped like ``s.beta``), ``>= 0``, possibly ``+inf``."""


@attrs.define(kw_only=True)
class ScaleOptions:
    scale: float = help_field(1.0, "multiplies sigma_t", validator=non_negative)


class PathDiffusion(Diffusion):
    """``sigma_t = scale g(t)``: the path's reverse-SDE diffusion (the forward noising SDE run backwards)."""

    Options = ScaleOptions
    needs_gaussian_path = True

    def sigma_sq(self, s: Schedule) -> Tensor:
        return self.options.scale**2 * reverse_diffusion_sq(s)
