"""The path kit: endpoints, the conditional velocity and score against autograd, the signal-to-noise ratio,
shapes, dtypes and devices, at the author's options and at option values drawn from the options' validators."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import ClassVar

import attrs
import torch
from torch import Tensor

from fmcore.core.path import GaussianPath, ProbabilityPath
from fmcore.testing.common import (
    DEFAULT_SHAPES,
    VECTOR_SHAPE,
    close,
    declared,
    devices,
    gen,
    interior_times,
    randn,
)
from fmcore.testing.variants import option_variants

#: an end value below this fraction of its coefficient's scale, yet not 0, is singular in practice
SINGULAR_FRACTION = 1e-6


def check_path_endpoints(path: ProbabilityPath, data_scale: float = 1.0, prior_tol: float = 0.15,
                         data_tol: float = 0.05, dim: int = 2, n: int = 4096) -> None:
    """``p_0`` is the prior and ``p_1`` concentrates at the data.

    For any path: ``sample(z, t=1)`` is within ``data_tol * data_scale`` (RMS) of ``z``, and
    ``sample(z, t=0, eps)`` is within ``prior_tol`` (relative RMS) of ``prior_sample(eps)`` for data of
    scale ``data_scale``. For a Gaussian path also: ``beta_1 <= data_tol * data_scale``, ``alpha_0 data_scale
    <= prior_tol beta_0``, and :func:`check_path_ends` (``alpha_1 = 1``, the prior is ``N(0, beta_0^2 I)``,
    no end singular in practice).
    """
    z = data_scale * randn((n, dim), 0)
    eps = randn((n, dim), 1)
    ones, zeros = torch.ones(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    x1 = path.sample(z, ones, eps).x
    rms1 = float(((x1 - z) ** 2).mean().sqrt())
    if not rms1 <= data_tol * data_scale:
        raise AssertionError(f"p_1 does not concentrate at the data: RMS |x_1 - z| = {rms1:.3g} > "
                             f"data_tol * data_scale = {data_tol * data_scale:.3g}")
    prior = path.prior_sample(eps)
    if prior.shape != eps.shape:
        raise AssertionError(f"prior_sample changed the shape {tuple(eps.shape)} to {tuple(prior.shape)}")
    x0 = path.sample(z, zeros, eps).x
    rel0 = float(((x0 - prior) ** 2).mean().sqrt() / (prior**2).mean().sqrt())
    if not rel0 <= prior_tol:
        raise AssertionError(f"p_0 is not the prior: sample(z, t=0, eps) differs from prior_sample(eps) by "
                             f"{rel0:.3g} (relative RMS) > prior_tol = {prior_tol} for data of scale {data_scale}")
    if not isinstance(path, GaussianPath):
        return
    start, end = path.endpoint(0.0), path.endpoint(1.0)
    a0, b0, b1 = float(start.alpha), float(start.beta), float(end.beta)
    if not b1 <= data_tol * data_scale:
        raise AssertionError(f"beta_1 = {b1!r}, expected a small non-negative number (<= {data_tol * data_scale})")
    if not abs(a0) * data_scale <= prior_tol * b0:
        raise AssertionError(f"alpha_0 = {a0!r} is not small against beta_0 = {b0!r}: the data leaks into p_0")
    check_path_ends(path)


def check_path_ends(path: GaussianPath) -> None:
    """What holds at every option value: ``alpha_1 = 1``, ``beta_0 > 0``, ``beta_1 >= 0``, ``prior_sample(eps)
    = beta_0 eps``, and no end singular in practice: ``alpha_0`` and ``beta_1`` are exactly 0 or at least
    ``SINGULAR_FRACTION`` (1e-6) of the largest ``|alpha_t|`` / ``|beta_t|`` (fmcore treats an exact 0 as a
    singular end, where the score, noise or data are undefined, and anything else as regular)."""
    start, end = path.endpoint(0.0), path.endpoint(1.0)
    a0, b0, a1, b1 = (float(v) for v in (start.alpha, start.beta, end.alpha, end.beta))
    if abs(a1 - 1.0) > 1e-6:
        raise AssertionError(f"alpha_1 = {a1!r}, expected 1 (the path must end at the data)")
    if not b0 > 0:
        raise AssertionError(f"beta_0 = {b0!r}, expected > 0 (the prior needs noise)")
    if not b1 >= 0:
        raise AssertionError(f"beta_1 = {b1!r}, expected >= 0")
    t = torch.linspace(0.0, 1.0, 257, dtype=torch.float64)
    alpha, beta = path.coefficients(t)[:2]
    for name, value, coeff, scale in (("alpha_0", a0, "alpha", float(alpha.abs().max())),
                                      ("beta_1", b1, "beta", float(beta.abs().max()))):
        if value != 0.0 and abs(value) < SINGULAR_FRACTION * scale:
            raise AssertionError(
                f"{name} = {value!r} is not 0 but below {SINGULAR_FRACTION:g} of the largest |{coeff}_t| "
                f"({scale:.3g}): that end is singular in practice (conversions there divide by {name}) although "
                f"fmcore, which treats only an exact 0 as singular, cannot tell. Make {name} exactly 0 (write the "
                f"formula so that it is 0 there, e.g. sin(pi (1 - t) / 2) instead of cos(pi t / 2)) or larger "
                f"than {SINGULAR_FRACTION:g} x {scale:.3g}")
    eps = randn((64, 2), 1)
    close(path.prior_sample(eps), b0 * eps, "prior_sample(eps) against beta_0 * eps (prior N(0, beta_0^2 I))",
          1e-5, 1e-8)


def check_path_snr(path: ProbabilityPath, n: int = 1025, margin: float = 1e-3) -> None:
    """For a Gaussian path: ``D = beta_t d_alpha - alpha_t d_beta > 0`` and the signal-to-noise ratio
    ``alpha_t / beta_t`` strictly increases on ``[margin, 1 - margin]`` (``d(alpha/beta)/dt = D / beta^2``).
    Only then is the map between velocity and (data, noise) predictions invertible at every time."""
    if not isinstance(path, GaussianPath):
        return
    t = torch.linspace(margin, 1.0 - margin, n, dtype=torch.float64)
    alpha, beta, d_alpha, d_beta = path.coefficients(t)
    det = beta * d_alpha - alpha * d_beta
    if not (torch.isfinite(det) & (det > 0)).all():
        i = int(torch.argmin(torch.nan_to_num(det, nan=-math.inf)))
        raise AssertionError(f"D = beta d_alpha - alpha d_beta = {float(det[i]):.3g} at t = {float(t[i]):.4g}, "
                             "expected > 0 at every interior time (the velocity <-> data/noise conversion is not "
                             "invertible there)")
    snr = alpha / beta
    step = snr[1:] - snr[:-1]
    if not (step > 0).all():
        i = int(torch.argmin(step))
        raise AssertionError(f"the signal-to-noise ratio alpha_t / beta_t is not strictly increasing: "
                             f"{float(snr[i]):.6g} at t = {float(t[i]):.4g}, {float(snr[i + 1]):.6g} at "
                             f"t = {float(t[i + 1]):.4g} (conversions between predictions are invertible only "
                             "on an interval where it is)")


def _flow(path: ProbabilityPath, z: Tensor, eps: Tensor) -> Callable[[Tensor], Tensor]:
    return lambda t: path.sample(z, t, eps).x


def check_path_velocity(path: ProbabilityPath, shape: Sequence[int] = VECTOR_SHAPE, n: int = 64,
                        margin: float = 0.02, rtol: float = 1e-6, atol: float = 1e-6) -> None:
    """``conditional_velocity(x_t, z, t)`` equals ``d/dt`` of the flow ``t -> sample(z, t, eps).x`` (autograd,
    float64), at times in ``[margin, 1 - margin]``; for a Gaussian path also ``d_alpha``, ``d_beta``."""
    z, eps = randn((n, *shape), 2), randn((n, *shape), 3)
    t = interior_times(n, 4, margin)
    x, dxdt = torch.autograd.functional.jvp(_flow(path, z, eps), t, torch.ones_like(t))
    close(path.conditional_velocity(x, z, t), dxdt, "conditional_velocity against d/dt of the flow", rtol, atol)
    if isinstance(path, GaussianPath):
        (alpha, beta), (d_alpha, d_beta) = torch.autograd.functional.jvp(
            lambda tt: path.coefficients(tt)[:2], t, torch.ones_like(t))
        coeffs = path.coefficients(t)
        close(coeffs[2], d_alpha, "d_alpha against d alpha_t / dt", rtol, atol)
        close(coeffs[3], d_beta, "d_beta against d beta_t / dt", rtol, atol)
        s = path.schedule(t, z)
        close(x, s.alpha * z + s.beta * eps, "sample(z, t, eps).x against alpha_t z + beta_t eps", rtol, atol)


def gaussian_log_prob(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """``log N(x; mean, std^2 I)`` summed over the non-batch dimensions (``std`` broadcasts against x)."""
    dim = x[0].numel()
    sq = (((x - mean) / std) ** 2).flatten(1).sum(1)
    return -0.5 * sq - dim * torch.log(std.flatten(1)[:, 0]) - 0.5 * dim * math.log(2 * math.pi)


def check_path_score(path: ProbabilityPath, shape: Sequence[int] = VECTOR_SHAPE, n: int = 64,
                     margin: float = 0.02, rtol: float = 1e-6, atol: float = 1e-6) -> None:
    """``conditional_score(x, z, t)`` equals ``grad_x log p_t(x | z)`` (autograd, float64).

    For a Gaussian path the density is ``N(alpha_t z, beta_t^2 I)`` written here independently, and the
    path's ``conditional_log_prob`` must equal it; another path is checked against its own
    ``conditional_log_prob`` when it has both methods (and skipped otherwise).
    """
    if not hasattr(path, "conditional_score"):
        return
    z, eps = randn((n, *shape), 5), randn((n, *shape), 6)
    t = interior_times(n, 7, margin)
    x = path.sample(z, t, eps).x.detach().requires_grad_(True)
    if isinstance(path, GaussianPath):
        s = path.schedule(t, z)
        log_p = gaussian_log_prob(x, s.alpha * z, s.beta)
        close(path.conditional_log_prob(x, z, t).detach(), log_p.detach(),
              "conditional_log_prob against log N(x; alpha_t z, beta_t^2 I)", rtol, atol)
    elif hasattr(path, "conditional_log_prob"):
        log_p = path.conditional_log_prob(x, z, t)
    else:
        return
    (grad,) = torch.autograd.grad(log_p.sum(), x)
    close(path.conditional_score(x.detach(), z, t), grad, "conditional_score against grad_x log p_t(x|z)",
          rtol, atol)


def check_path_shapes(path: ProbabilityPath, shapes: Sequence[Sequence[int]] = DEFAULT_SHAPES, n: int = 5) -> None:
    """Every method returns data shaped like its input, for vector and image-shaped data."""
    for shape in shapes:
        z, eps = randn((n, *shape), 8, torch.float32), randn((n, *shape), 9, torch.float32)
        t = torch.rand(n, generator=gen(10))
        ps = path.sample(z, t, eps)
        want = (n, *shape)
        got = {"sample(...).x": ps.x, "prior_sample(eps)": path.prior_sample(eps),
               "conditional_velocity": path.conditional_velocity(ps.x, z, t)}
        if hasattr(path, "conditional_score"):
            got["conditional_score"] = path.conditional_score(ps.x, z, t.clamp(0.05, 0.95))
        for what, value in got.items():
            if tuple(value.shape) != want:
                raise AssertionError(f"{what} has shape {tuple(value.shape)} for data of shape {want}")
        if tuple(ps.t.shape) != (n,):
            raise AssertionError(f"sample(...).t has shape {tuple(ps.t.shape)}, expected ({n},)")


def check_path_dtypes(path: ProbabilityPath, shape: Sequence[int] = VECTOR_SHAPE, n: int = 5) -> None:
    """float32 and float64 data stay in their dtype and on their device through every method."""
    for device in devices():
        for dtype in (torch.float32, torch.float64):
            z, eps = randn((n, *shape), 11, dtype, device), randn((n, *shape), 12, dtype, device)
            t = interior_times(n, 13, 0.05, dtype, device)
            ps = path.sample(z, t, eps)
            got = {"sample(...).x": ps.x, "prior_sample(eps)": path.prior_sample(eps),
                   "conditional_velocity": path.conditional_velocity(ps.x, z, t)}
            if hasattr(path, "conditional_score"):
                got["conditional_score"] = path.conditional_score(ps.x, z, t)
            for what, value in got.items():
                if value.dtype != dtype or value.device.type != device.type:
                    raise AssertionError(f"{what} returned {value.dtype} on {value.device} for {dtype} data on "
                                         f"{device}")
                if not torch.isfinite(value).all():
                    raise AssertionError(f"{what} is not finite in {dtype} at t in [0.05, 0.95]")


def check_path_lean_coefficients(path: GaussianPath, n: int = 64) -> None:
    """The hot path's pieces agree with :meth:`~GaussianPath.coefficients`: :meth:`~GaussianPath.signal_noise`
    and :meth:`~GaussianPath.rates` at times shaped [N, 1] (tensors of that shape, or floats), float64."""
    t = interior_times(n, 14, 0.0, torch.float64, torch.device("cpu"))
    t_x = t[:, None]
    full = path.coefficients(t)
    alpha, beta = path.signal_noise(t_x)
    pieces = {"signal_noise alpha": alpha, "signal_noise beta": beta}
    pieces.update(zip(("rates d_alpha", "rates d_beta"), path.rates(t_x, alpha, beta), strict=True))
    for (what, got), want in zip(pieces.items(), full, strict=True):
        if isinstance(got, Tensor) and tuple(got.shape) != (n, 1):
            raise AssertionError(f"{what} has shape {tuple(got.shape)} for times of shape ({n}, 1); it must keep "
                                 "the shape of t (or be a Python float where it is constant)")
        got = torch.as_tensor(got, dtype=torch.float64).expand(n, 1).flatten()
        mask = torch.isfinite(want)
        if not torch.equal(mask, torch.isfinite(got)) or not torch.allclose(got[mask], want[mask], rtol=1e-12,
                                                                             atol=1e-12):
            raise AssertionError(f"{what} differs from coefficients(t) (largest gap "
                                 f"{float((got[mask] - want[mask]).abs().max()):.3g}); the hot path would train on "
                                 "other coefficients than the path states")


def path_variants(path: ProbabilityPath, limit: int = 12) -> list[ProbabilityPath]:
    """``path`` and paths of its class at option values drawn by
    :func:`~fmcore.testing.variants.option_variants` (``type(path)(options)``; attrs options only)."""
    options = getattr(path, "options", None)
    if options is None or not attrs.has(type(options)):
        return [path]
    return [path, *(type(path)(o) for o in option_variants(options, limit=limit)[1:])]


def check_path_identities(path: ProbabilityPath) -> None:
    """The checks that hold at any option value: velocity and score against autograd, the ends, the SNR."""
    check_path_velocity(path)
    check_path_score(path)
    if isinstance(path, GaussianPath):
        check_path_ends(path)
        check_path_snr(path)
        check_path_lean_coefficients(path)


def check_path_variants(variants: Sequence[ProbabilityPath]) -> None:
    """:func:`check_path_identities` on each path, naming the options of the one that fails."""
    for variant in variants:
        try:
            check_path_identities(variant)
        except AssertionError as exc:
            raise AssertionError(f"with {getattr(variant, 'options', None)!r}: {exc}") from exc


def check_path_options(path: ProbabilityPath, limit: int = 12) -> None:
    """:func:`check_path_identities` at every option value of :func:`path_variants`."""
    check_path_variants(path_variants(path, limit))


def check_path(path: ProbabilityPath, data_scale: float = 1.0, prior_tol: float = 0.15,
               data_tol: float = 0.05) -> None:
    """Every path check."""
    check_path_endpoints(path, data_scale, prior_tol, data_tol)
    check_path_snr(path)
    for shape in DEFAULT_SHAPES:
        check_path_velocity(path, shape)
        check_path_score(path, shape)
    check_path_shapes(path)
    check_path_dtypes(path)
    check_path_options(path)


class PathConformance:
    """Subclass with ``path = MyPath(MyPath.Options(...))`` (or override :meth:`make_path`).

    ``data_scale``: typical size of a data point; ``prior_tol``: how far ``p_0`` may be from the prior for
    such data (relative); ``data_tol``: how far ``p_1`` may be from the data (in units of ``data_scale``).
    The identities (velocity, score, ends, SNR) are also checked at other option values, drawn from the
    options' validators (:meth:`make_variants`; override it to choose them).
    """

    path: ClassVar[ProbabilityPath | None] = None
    data_scale: ClassVar[float] = 1.0
    prior_tol: ClassVar[float] = 0.15
    data_tol: ClassVar[float] = 0.05
    shapes: ClassVar[tuple[tuple[int, ...], ...]] = DEFAULT_SHAPES

    def make_path(self) -> ProbabilityPath:
        return declared(self, "path")

    def make_variants(self) -> list[ProbabilityPath]:
        """The paths checked at several option values (default: :func:`path_variants`)."""
        return path_variants(self.make_path())

    def test_path_endpoints(self) -> None:
        check_path_endpoints(self.make_path(), self.data_scale, self.prior_tol, self.data_tol)

    def test_path_snr_increasing(self) -> None:
        check_path_snr(self.make_path())

    def test_path_velocity_is_flow_derivative(self) -> None:
        for shape in self.shapes:
            check_path_velocity(self.make_path(), shape)

    def test_path_score_is_log_density_gradient(self) -> None:
        for shape in self.shapes:
            check_path_score(self.make_path(), shape)

    def test_path_shapes(self) -> None:
        check_path_shapes(self.make_path(), self.shapes)

    def test_path_dtypes_and_devices(self) -> None:
        check_path_dtypes(self.make_path())

    def test_path_at_other_option_values(self) -> None:
        check_path_variants(self.make_variants())
