"""CFM, DSM and DDPM: regression objectives that differ only in what the network predicts and the weight.

The targets and the training loop live in :class:`fmcore.RegressionObjective`; these classes only name
their parameterization and weighting.
"""

from __future__ import annotations

import attrs
from torch import Tensor

from fmcore import ObjectiveOptions, Prediction, RegressionObjective, Schedule
from fmcore.core.options import help_field, in_range, one_of


class CFM(RegressionObjective):
    """Conditional flow matching: || v(x_t, t) - u_t(x_t | z) ||^2 (Lipman et al. 2023)."""

    Options = ObjectiveOptions
    prediction = Prediction.VELOCITY


@attrs.define(kw_only=True)
class ScoreOptions(ObjectiveOptions):
    """Options of the score and noise objectives: like every objective's, with t_eps = 1e-3 by default."""

    t_eps: float = help_field(1e-3, "keep training times in [t_eps, 1 - t_eps] at ends where the target is "
                              "singular", validator=in_range(0.0, 0.5, hi_open=True))


@attrs.define(kw_only=True)
class DSMOptions(ScoreOptions):
    """DSM's options: also the weighting lambda(t) of the squared score error."""

    weighting: str = help_field("beta2", "lambda(t): 'beta2' (= beta_t^2, stable) or 'none' (= 1)",
                                validator=one_of(("beta2", "none")))


class DSM(RegressionObjective):
    """Denoising score matching: lambda(t) || s(x_t, t) + eps / beta_t ||^2 (Vincent 2011; Song et al. 2021)."""

    Options = DSMOptions
    prediction = Prediction.SCORE

    def weight(self, s: Schedule) -> Tensor | None:
        return s.beta**2 if self.options.weighting == "beta2" else None


class DDPM(RegressionObjective):
    """Noise prediction: || eps(x_t, t) - eps ||^2 (Ho et al. 2020, the "simple" loss)."""

    Options = ScoreOptions
    prediction = Prediction.NOISE
