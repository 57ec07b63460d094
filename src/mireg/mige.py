"""MIGE: the mutual-information gradient from score estimates (paper §3).

Entropy gradient: for reparameterised samples z = g_ψ(ε),
∇_ψ H(z) = −E[s(z)ᵀ ∂z/∂ψ] with s = ∇_z log q(z). The scalar

    entropy_surrogate(z) = −mean_i ⟨sg(ŝ(z_i)), z_i⟩

therefore has gradient ∇_ψ H(z) (``sg`` = detach). MIGE combines such terms:

* Circumstances I and II (deterministic or two-stage encoder):
  I(x; z) = H(x) + H(z) − H(x, z), each score estimated on the detached batch; a term whose
  input needs no gradient (the data side in Circumstance I) is skipped.
* Circumstance III (stochastic encoder): ∇I(x; z) = ∇H(z) − ∇H(z|x), the conditional term
  given analytically (Gaussian encoder: H(z|x) = E[Σ log σ] + const) or by a conditional score.
  Given the Gaussian encoder's means too, the marginal of the batch is the mixture
  q̂(z) = (1/M) Σ_j N(z; μ_j, diag σ_j²), whose entropy H(q̂) = −E[log q̂(z)] is differentiated exactly,
  through the samples and the components (:func:`gaussian_mixture_gradients`).
* Scalable SSGE: the data side is projected by a random ``[k, d]`` matrix (paper eq. 18-19).

Calibration (the default, ``calibrate="affine"``): the estimated score is corrected to satisfy
Stein's identity for affine test functions, E[s] = 0 and E[(z − μ) sᵀ] = −I, which makes the
entropy gradient exact along every affine direction (see :func:`stein_calibrate`).

Preconditioning (the default, ``precondition="auto"``: full whitening while d ≤ M/2, per-coordinate
standardisation beyond, where a covariance estimated from M ≈ d samples would whiten the batch
into nearly equidistant points): each coordinate is standardised, the batch is whitened by its
correlation matrix (shrunk towards the identity), u = W D⁻¹(z − μ), and the score is mapped
back, s_z = D⁻¹ Wᵀ s_u. Standardising first makes the gradient independent of the scale of
each coordinate (pixels next to a small representation). Kernel score estimators with one
isotropic bandwidth fail on strongly correlated batches (the joint of (x, y) at |ρ| → 1 has
covariance eigenvalues 1 ± ρ): the median bandwidth follows the wide directions and the score
along the narrow one, which dominates ∇I, is underestimated. Whitening makes every direction
unit scale; the paper's raw-coordinate setting is ``precondition="none"``.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

import torch
from torch import Tensor, nn

from mireg.distributed import gather_rows
from mireg.errors import CalibrationError, CalibrationWarning, UnknownEstimatorError
from mireg.estimators import (
    MIGradientEstimator,
    ScoreEstimator,
    all_finite,
    check_finite,
    check_samples,
    compute_dtype,
    describe,
    score_of_checked,
)
from mireg.hookspecs import Register, hookimpl
from mireg.linalg import cholesky_ex
from mireg.options import Range, check_options, validate_options
from mireg.projection import flip_columns, random_projection

Precondition = Literal["auto", "full", "diag", "none"]
PRECONDITIONS = ("auto", "full", "diag", "none")
Calibrate = Literal["affine", "scale", "none"]
Marginal = Literal["mixture", "score"]
#: Smallest batch :func:`preconditioned_score` standardises (two samples standardise to ±1 everywhere).
MIN_PRECONDITIONED_BATCH = 3
#: MIGE's score estimator (plugin mireg-kscore): Tikhonov with a local diagonal RBF kernel on the whitened batch,
#: nearer dI/dρ than SSGE on the non-Gaussian (warped) toy at a fraction of its cost, one Cholesky per fit
#: (benchmarks/results/toy_gradient_default.md, mige_speed.md).
DEFAULT_SCORE = "kef"
#: Batches above this size fit MIGE's score estimates on this many landmark rows (benchmarks/results/mige_speed.md).
DEFAULT_LANDMARKS = 512
#: Options of a value score estimator that given ``value_score_options`` override: Stein at 1.5x the median
#: bandwidth is within 5% on the Gaussians, where 1x is not, and much nearer on benchmark-mi's tasks than 2x
#: (benchmarks/results/mi_values.md, bmi_suite.md).
VALUE_SCORE_DEFAULTS: dict[str, dict[str, Any]] = {"stein": {"bandwidth_multiplier": 1.5}}
#: MIGE's entropy terms are fitted in one stacked call up to this many fitted rows (the batch, or its landmarks);
#: beyond it a stacked call costs more than separate ones on the CPU (benchmarks/fit_speed.py).
STACKED_FIT_ROWS = 128
#: Entries (rows × components × coordinates) in one block of :func:`gaussian_mixture_gradients`.
MIXTURE_BLOCK = 1 << 22


def _build_score(
    score: str | type[ScoreEstimator] | ScoreEstimator, options: dict[str, Any] | None, *, where: str = "score_options."
) -> ScoreEstimator:
    """``score`` itself when built, else the class ``score`` built with its ``whitened_options``
    (the plugin's settings for whitened batches) overridden by ``options``, validated."""
    if isinstance(score, ScoreEstimator):
        if options:
            raise ValueError("score_options apply only when `score` is a name or a class; the given estimator is built")
        return score
    if not (isinstance(score, type) and issubclass(score, ScoreEstimator)):
        raise ValueError(
            f"score must be a ScoreEstimator class or instance, got {score!r}; names are resolved by a registry: "
            f"mireg.mi_gradient_estimator('mige', score={score!r}) or mireg.entropy_surrogate(z, score={score!r})"
        )
    options = {**score.whitened_options, **(options or {})}  # given options override the plugin's
    return score(**validate_options(score, options, where=where))


def _standardise(samples: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
    """``samples`` ``[M, d]`` standardised per coordinate: ``(standardised [M, d], std [d], constant)``.

    ``std`` holds the standard deviations in the units of ``samples`` (a positive stand-in for a
    constant coordinate, whose score is 0), ``constant`` ``[d]`` masks the constant coordinates
    (``None`` when there is none: no masking pass then), which are exactly 0 in ``standardised``.
    The moments are taken of the samples divided by their largest |value| per coordinate, which can
    neither overflow nor underflow.
    """
    peak = samples.abs().amax(0).clamp_min_(torch.finfo(samples.dtype).tiny)
    scaled = samples / peak
    centred = scaled - scaled.mean(0)
    constant = samples.amax(0) == samples.amin(0)
    mask = constant if bool(constant.any()) else None
    if mask is not None:
        centred = centred.masked_fill(mask, 0.0)
    std = centred.square().mean(0).sqrt()
    if mask is not None:
        std = std.masked_fill(mask, 1.0)
    return centred / std, peak * std, mask


def _whiten(standardised: Tensor, shrinkage: float) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """Whitened rows ``u [M, d]`` of ``standardised`` (unit variance per coordinate, constant ones 0) and
    the map of a score in u back to the standardised coordinates.

    The correlation matrix R is shrunk towards the identity, (1 − shrinkage) R + shrinkage I, which
    keeps it invertible for d ≥ M whatever the scales of the original coordinates.
    """
    corr = standardised.T @ standardised * ((1 - shrinkage) / standardised.shape[0])
    corr.diagonal().fill_(1.0)  # a constant coordinate (all 0) is left alone
    # Whitener W = L⁻¹ with R = L Lᵀ: u = v L⁻ᵀ row-wise and s_v = s_u L⁻¹. A Cholesky factor
    # costs a fraction of an eigendecomposition; the rotation it leaves relative to the
    # symmetric R^{-1/2} does not matter to estimators with rotation-invariant kernels.
    factor, info = cholesky_ex(corr)
    # Squared pivots are at least the smallest eigenvalue, which shrinkage bounds below: smaller ones mean R is
    # singular up to rounding (a duplicated coordinate passes the factorisation on a rounding error).
    floor = 0.5 * max(shrinkage, torch.finfo(corr.dtype).eps ** 0.5)
    if bool(info.any()) or float(factor.diagonal().amin()) ** 2 < floor:
        raise ValueError(
            f"the correlation matrix of the batch is singular (shrinkage = {shrinkage}): some coordinates are "
            "linear combinations of others (duplicated or collinear features, or d >= M samples); use shrinkage > 0 "
            "(the default is 1e-3) or precondition='diag'"
        )
    whitened = torch.linalg.solve_triangular(factor.T, standardised, upper=True, left=False)
    return whitened, lambda score: torch.linalg.solve_triangular(factor, score, upper=False, left=False)


def stein_calibrate(score: Tensor, centred: Tensor, mode: Calibrate = "affine") -> Tensor:
    """Correct an estimated score so that it satisfies Stein's identity for affine test functions.

    Any density with finite moments has E[s(z)] = 0 and E[(z − μ) s(z)ᵀ] = −I (Stein's identity
    with h(z) = 1 and h(z) = z). Kernel estimators shrink the score (truncated spectra, ridges),
    which biases the entropy gradient along every affine direction: a Gaussian encoder's σ then
    drifts under Adam, because ∂Ĥ(z)/∂log σ no longer balances ∂H(z|x)/∂log σ. This centres the
    estimate and maps it by G⁻¹, G = −mean_i (z_i − μ) ŝ_iᵀ (``"affine"``; G shrunk towards
    its mean diagonal by d/(d + M) against sampling noise) or rescales it by d / tr G
    (``"scale"``), so that the sample moments match the identity. It is exact for Gaussians and
    leaves the non-affine part of the estimate as it was.

    Args:
        score: ``[M, d]`` estimated score at the samples.
        centred: ``[M, d]`` the samples minus their mean, in the coordinates of ``score``.
        mode: ``"affine"``, ``"scale"`` or ``"none"``.
    Returns:
        ``[M, d]`` the calibrated score.
    Raises:
        CalibrationError: when the estimate is not positively correlated with the samples
            (tr G ≤ 0, e.g. an untrained score network) or G cannot be inverted.
    """
    if mode == "none":
        return score
    m, d = score.shape
    score = score - score.mean(0, keepdim=True)
    moment = torch.mm(centred.mT, score).div_(-m)  # G, [d, d]; the identity for the true score
    mean_diag = moment.diagonal().mean()
    if not bool(mean_diag > 0):
        raise CalibrationError(
            "the score estimate is not positively correlated with the samples (−mean⟨z − μ, ŝ⟩ ≤ 0); "
            "it cannot be calibrated: check the score estimator's options, train it longer, or use calibrate='none'"
        )
    if mode == "scale":
        return score / mean_diag
    weight = d / (d + m)
    moment.mul_(1 - weight).diagonal().add_(weight * mean_diag)
    solution, info = torch.linalg.solve_ex(moment.mT, score.mT)  # Gᵀ Xᵀ = Sᵀ: column-major views, no copies
    calibrated = solution.mT
    if bool(info.any()) or not all_finite(calibrated):
        raise CalibrationError(
            "the moment matrix −mean (z − μ) ŝᵀ of the score estimate is singular, so it cannot be calibrated: "
            "use calibrate='scale' or 'none'"
        )
    return calibrated


def _check_raw_scales(std: Tensor, constant: Tensor | None) -> None:
    """In raw coordinates a kernel cannot see a coordinate whose squared spread is below the rounding
    of the others': refuse a batch with standard deviations ``std`` ``[d]`` so far apart (constant
    coordinates masked by ``constant``, if any) instead of returning a gradient of (close to) 0."""
    if constant is not None:
        std = std[~constant]
    if std.numel() < 2:
        return
    ratio = float(std.amax() / std.amin())
    limit = torch.finfo(std.dtype).eps ** -0.5
    if ratio > limit:
        raise ValueError(
            f"the coordinates of the batch differ in scale by a factor of {ratio:.3g} (> {limit:.3g} in "
            f"{std.dtype}): in raw coordinates (precondition='none') the kernel cannot resolve the small ones and "
            "the gradient would be lost to rounding; use precondition='auto' or 'diag', or rescale the inputs"
        )


def preconditioned_score(
    estimator: ScoreEstimator,
    samples: Tensor,
    *,
    precondition: Precondition = "auto",
    shrinkage: float = 1e-3,
    calibrate: Calibrate = "none",
    on_uncalibrated: Callable[[CalibrationError], None] | None = None,
    landmarks: int | None = None,
) -> Tensor:
    """The score of ``samples`` ``[M, d]`` at the samples, estimated in preconditioned coordinates.

    ``precondition``: ``"full"`` standardises each coordinate and whitens with the batch's
    correlation matrix, shrunk towards the identity by ``shrinkage`` (invertible when d ≥ M);
    ``"diag"`` only standardises each coordinate; ``"none"`` uses the raw coordinates (and
    refuses coordinate scales too far apart for a kernel to resolve); ``"auto"`` is ``"full"``
    while d ≤ M/2 and ``"diag"`` beyond, where a covariance from M ≈ d samples would whiten the
    batch into nearly equidistant points. Standardising first makes the result independent of
    the scale of each coordinate. Constant coordinates get a score of 0.
    ``calibrate``: see :func:`stein_calibrate`, applied in the preconditioned coordinates. When
    the estimate cannot be calibrated, ``on_uncalibrated`` (if given) is told and the estimate
    is used uncalibrated; without it the :class:`~mireg.errors.CalibrationError` propagates.
    ``landmarks``: when M exceeds it, the estimator is fitted on that many evenly strided rows of
    the preconditioned batch and evaluated at every row (``score(fit, at=rows)``), so the kernel
    work is O(M · landmarks) instead of O(M²) or O(M³); preconditioning and calibration still use
    every row. ``None`` fits on the whole batch.
    Half precision is computed in float32. Returns ``[M, d]``, detached, in the dtype of ``samples``.

    Raises:
        ValueError: all samples identical, coordinate scales unresolvable with ``"none"``, or a
            singular correlation matrix with ``shrinkage = 0``.
        NonFiniteError: the samples or the score overflow their dtype.
    """
    (score,) = preconditioned_scores(
        estimator,
        [samples],
        precondition=precondition,
        shrinkage=shrinkage,
        calibrate=calibrate,
        on_uncalibrated=on_uncalibrated,
        landmarks=landmarks,
    )
    return score


def preconditioned_scores(
    estimator: ScoreEstimator,
    batches: Sequence[Tensor],
    *,
    precondition: Precondition = "auto",
    shrinkage: float = 1e-3,
    calibrate: Calibrate = "none",
    on_uncalibrated: Callable[[CalibrationError], None] | None = None,
    landmarks: int | None = None,
) -> list[Tensor]:
    """:func:`preconditioned_score` of each of ``batches`` (``[M, d_t]``, one M), with one shared fit.

    Each batch is preconditioned and calibrated on its own; the estimator is called once on the
    preconditioned batches stacked ``[T, M, d]`` when it takes batched input (``batched``), the
    stack changes nothing (equal widths, or narrower batches padded with zero columns for an
    estimator with ``zero_padding_exact``) and at most :data:`STACKED_FIT_ROWS` rows are fitted:
    one call then does the kernel and factorisation work of every batch in one pass of each
    operator (MIGE's z and joint terms), which on small batches saves the per-operator overhead.
    Returns ``[M, d_t]`` scores.
    """
    prepared = [
        _precondition(estimator, samples, precondition, shrinkage, calibrate, on_uncalibrated) for samples in batches
    ]
    scores = _fit(estimator, [rows for rows, _ in prepared], landmarks)
    return [finish(score) for (_, finish), score in zip(prepared, scores, strict=True)]


def _precondition(
    estimator: ScoreEstimator,
    samples: Tensor,
    precondition: Precondition,
    shrinkage: float,
    calibrate: Calibrate,
    on_uncalibrated: Callable[[CalibrationError], None] | None,
) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """The rows ``[M, d]`` of ``samples`` in the coordinates their score is estimated in (finite, in the
    compute dtype) and the map of a score of those rows to the calibrated, detached score of ``samples``
    (see :func:`preconditioned_score` for the arguments)."""
    work = samples.detach().to(compute_dtype(samples.dtype))
    m, d = work.shape
    standardised, std, constant = _standardise(work)
    if constant is not None and bool(constant.all()):
        raise ValueError(
            f"all {m} samples of the batch are identical, so its entropy gradient is undefined: check that the "
            "encoder has not collapsed to a constant and that the batch holds distinct samples"
        )
    if precondition == "auto":
        precondition = "full" if 2 * d <= m else "diag"
    if precondition not in PRECONDITIONS:
        raise ValueError(f"precondition must be one of {PRECONDITIONS}, got {precondition!r}")
    if precondition != "none" and m < MIN_PRECONDITIONED_BATCH:
        raise ValueError(
            f"a preconditioned score needs a batch of at least {MIN_PRECONDITIONED_BATCH} samples, got {m}: two "
            "standardised samples are mirror images in every coordinate and every entropy gradient cancels"
        )

    def calibrated(score: Tensor, rows: Tensor) -> Tensor:
        try:
            if constant is None:
                return stein_calibrate(score, rows, calibrate)
            live = ~constant  # constant coordinates (all 0 in ``rows``) have no moment to calibrate
            return score.masked_scatter(live, stein_calibrate(score[:, live], rows[:, live], calibrate))
        except CalibrationError as error:
            if on_uncalibrated is None:
                raise
            on_uncalibrated(CalibrationError(f"score estimator {describe(estimator)}: {error}"))
            return score

    def done(result: Tensor) -> Tensor:
        if constant is not None:
            result = result.masked_fill(constant, 0.0)
        result = result.to(samples.dtype)
        check_finite(
            result,
            f"the score of score estimator {describe(estimator)} mapped back to the {samples.dtype} samples "
            "(it overflows: the samples are at the edge of their dtype's range)",
        )
        return result.detach()

    if precondition == "none":
        _check_raw_scales(std, constant)
        centred = standardised * std
        check_finite(centred, "the centred batch (the samples overflow their dtype when centred; the run may diverge)")
        return work, lambda score: done(calibrated(score, centred))
    if precondition == "diag":
        return standardised, lambda score: done(calibrated(score, standardised) / std)
    whitened, back = _whiten(standardised, shrinkage)
    return whitened, lambda score: done(back(calibrated(score, whitened)) / std)


def _fit(estimator: ScoreEstimator, rows: Sequence[Tensor], landmarks: int | None) -> list[Tensor]:
    """The scores ``[M, d_t]`` at every row of each of ``rows`` ``[M, d_t]`` (finite, in the compute dtype:
    not validated again), in one call on the stack when :func:`preconditioned_scores` allows it and at
    most :data:`STACKED_FIT_ROWS` rows are fitted."""
    width = max(r.shape[1] for r in rows)
    fitted = min(rows[0].shape[0], landmarks or rows[0].shape[0])
    shared = (
        len(rows) > 1
        and fitted <= STACKED_FIT_ROWS
        and estimator.batched
        and len({(r.shape[0], r.dtype, r.device) for r in rows}) == 1
        and (estimator.zero_padding_exact or all(r.shape[1] == width for r in rows))
    )
    if not shared:
        return [_fit_rows(estimator, r, landmarks) for r in rows]
    stacked = torch.stack([nn.functional.pad(r, (0, width - r.shape[1])) for r in rows])
    scores = _fit_rows(estimator, stacked, landmarks)
    return [score[:, : r.shape[1]] for score, r in zip(scores, rows, strict=True)]


def _fit_rows(estimator: ScoreEstimator, rows: Tensor, landmarks: int | None) -> Tensor:
    """The score ``[..., M, d]`` at every row of ``rows`` ``[..., M, d]``, fitted on landmark rows beyond ``landmarks``
    of them."""
    m = rows.shape[-2]
    if landmarks is None or m <= landmarks:
        return score_of_checked(estimator, rows)
    return score_of_checked(estimator, rows[..., _landmark_rows(m, landmarks, rows.device), :], at=rows)


def _landmark_rows(m: int, count: int, device: torch.device) -> Tensor:
    """Indices ``[count]`` of ``count`` evenly strided rows out of ``m`` (the rows of a batch are
    exchangeable, so a fixed stride is as good as a random subset and keeps the estimate deterministic)."""
    return torch.div(torch.arange(count, device=device) * m, count, rounding_mode="floor")


def gaussian_mixture_gradients(z: Tensor, mean: Tensor, log_var: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The gradients of Σ_i log q̂(z_i) for the Gaussian mixture q̂ = (1/N) Σ_j N(μ_j, diag σ_j²).

    With w_ij = softmax_j log N(z_i; μ_j, σ_j²) (taken in log space: the densities underflow when
    σ is small against the spread of μ) and r_ij = (z_i − μ_j) / σ_j²:

    * w.r.t. z_i, the score ∇ log q̂(z_i) = −Σ_j w_ij r_ij;
    * w.r.t. μ_j, Σ_i w_ij r_ij;
    * w.r.t. log σ_j², Σ_i w_ij (r_ij ⊙ (z_i − μ_j) − 1) / 2.

    Computed from the differences z_i − μ_j, not the expanded quadratic, which cancels
    catastrophically when σ is small; in blocks of rows of at most :data:`MIXTURE_BLOCK` entries
    (memory O(block), time O(M N d)). Half precision is computed in float32.

    Args:
        z: ``[M, d]`` points.
        mean: ``[N, d]`` means μ_j of the components.
        log_var: ``[N, d]`` their log-variances log σ_j².
    Returns:
        ``([M, d], [N, d], [N, d])``: the three gradients, detached, in the dtypes of the inputs.
    Raises:
        NonFiniteError: σ_j² or the gradients outside the range of the dtype.
    """
    with torch.no_grad():
        dtype = compute_dtype(z.dtype)
        points, centres, log_variance = (t.detach().to(dtype) for t in (z, mean, log_var))
        precision = (-log_variance).exp()  # [N, d]
        check_finite(precision, "1 / σ² = exp(−log_var) (log_var is too small for the dtype)")
        log_norm = 0.5 * log_variance.sum(-1)  # [N]; the common −d/2 log 2π cancels in the softmax
        rows = max(1, MIXTURE_BLOCK // centres.numel())
        scores = []
        to_mean = torch.zeros_like(centres)
        to_log_var = torch.zeros_like(centres)
        for block in points.split(rows):
            difference = block[:, None, :] - centres  # [b, N, d]
            scaled = difference * precision  # r_ij
            quadratic = difference * scaled  # (z_i − μ_j)² / σ_j²
            weights = (-0.5 * quadratic.sum(-1) - log_norm).softmax(-1)  # [b, N]
            scores.append(-torch.einsum("bn,bnd->bd", weights, scaled))
            to_mean += torch.einsum("bn,bnd->nd", weights, scaled)
            to_log_var += 0.5 * (torch.einsum("bn,bnd->nd", weights, quadratic) - weights.sum(0)[:, None])
        score = torch.cat(scores)
        for value, what in ((score, "z"), (to_mean, "mean"), (to_log_var, "log_var")):
            check_finite(value, f"the gradient of the batch's Gaussian mixture w.r.t. {what} (σ² or z leave the dtype)")
    return score.to(z.dtype), to_mean.to(mean.dtype), to_log_var.to(log_var.dtype)


def _surrogate(score: Tensor, samples: Tensor) -> Tensor:
    """``−mean_i ⟨score_i, samples_i⟩`` (0-dim) for a detached ``score`` and ``samples`` ``[M, d]``; its
    gradient w.r.t. the samples is −score / M. Not checked: MIGE's output is (and ``entropy_surrogate``'s)."""
    return -(score * samples).sum(-1).mean()


def _require_gradient(*inputs: Tensor) -> None:
    """With gradients enabled, refuse inputs none of which requires a gradient: the surrogate would be a constant."""
    if torch.is_grad_enabled() and not any(t.requires_grad for t in inputs):
        raise ValueError(
            "neither x nor z (nor log_var) requires a gradient, so MIGE's surrogate is a constant that adds nothing "
            "to a loss: pass the z that carries the encoder's graph (not z.detach()); MIGE estimates gradients only, "
            "it has no MI value to return"
        )


def _like_z(given: object, name: str, z: Tensor) -> Tensor:
    """``given`` reshaped to z's ``[B, dz]`` after checking it is a finite floating tensor of z's
    shape (or z's unflattened shape); ``name`` is the keyword it came by."""
    if not isinstance(given, Tensor) or not given.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor with the shape of z, got {given!r:.80}")
    if given.ndim < 1 or given.shape[0] != z.shape[0] or given[0].numel() != z.shape[1]:
        raise ValueError(
            f"{name} must have the shape of z ({z.shape[0]} rows of {z.shape[1]} values once flattened, as z is "
            f"used), got shape {tuple(given.shape)}"
        )
    given = given.reshape(z.shape)
    check_finite(given, name)
    return given


def _warn(error: CalibrationError, stacklevel: int = 5) -> None:
    warnings.warn(
        f"{error}. The estimate is used uncalibrated for this batch: this happens while a parametric score "
        "network is still untrained or with very small batches",
        CalibrationWarning,
        stacklevel=stacklevel,
    )


def entropy_surrogate(
    z: Tensor,
    score: type[ScoreEstimator] | ScoreEstimator,
    *,
    score_options: dict[str, Any] | None = None,
    precondition: Precondition = "auto",
    shrinkage: float = 1e-3,
    calibrate: Calibrate = "affine",
) -> Tensor:
    """A scalar whose gradient w.r.t. everything upstream of ``z`` estimates ∇H(z).

    Args:
        z: reparameterised samples ``[M, d]`` (rows i.i.d. from q_ψ).
        score: a :class:`~mireg.ScoreEstimator` class or a built one (``mireg.entropy_surrogate``
            also takes a registered name).
        score_options: options for ``score`` when it is a class, over its ``whitened_options``.
        precondition, shrinkage, calibrate: see :func:`preconditioned_score`.
    Returns:
        ``−mean_i ⟨sg(ŝ(z_i)), z_i⟩``, a 0-dim tensor; ascend it to maximise entropy.
    """
    z, _ = check_samples(z)
    estimator = _build_score(score, score_options)
    if estimator.parametric and not isinstance(score, ScoreEstimator):
        raise ValueError(
            f"{score.name!r} is a parametric score estimator that learns across calls: build it once "
            f"(est = mireg.score_estimator({score.name!r})) and pass `score=est` at every call"
        )
    s = preconditioned_score(
        estimator, z, precondition=precondition, shrinkage=shrinkage, calibrate=calibrate, on_uncalibrated=_warn
    )
    value = _surrogate(s, z)
    check_finite(value, "the entropy surrogate (the samples overflow their dtype)")
    return value


class MIGE(MIGradientEstimator):
    """Mutual Information Gradient Estimator: ∇I from score estimates of marginals and joint.

    ``mi(x, z)`` returns a surrogate whose autograd gradient is the MIGE estimate of ∇I(x; z)
    (its value is not an MI estimate; ``estimate`` gives the MI value by the heat-flow identity,
    :mod:`mireg.heat_flow`). With ``log_var`` or ``conditional_score`` it uses Circumstance III,
    ∇H(z) − ∇H(z|x), for stochastic encoders. Given ``mean`` and ``log_var`` of a Gaussian encoder,
    ∇H(z) comes by default (``marginal="mixture"``) from the batch's mixture
    q̂ = (1/M) Σ_j N(μ_j, diag σ_j²), its entropy −E[log q̂(z)] differentiated exactly through the
    samples and the components, not from a score estimate: a kernel estimate from M ≈ K samples
    of a K-dimensional z recovers only a fraction of the score, so ∇H(z) comes out too weak
    against the exact −∇H(z|x) and σ grows without bound at large IB weights β; and the sample
    term alone (the detached score) carries noise of size 1/σ that the component term cancels.

    Defaults were chosen on the correlated-Gaussian toy and its warped (non-Gaussian) twin
    (``benchmarks/toy_gradient.py``; the comparisons of settings are in ``benchmarks/results/toy_gradient*.md``):
    the score estimator is :data:`DEFAULT_SCORE` with its plugin's ``whitened_options``.

    Calibration that cannot apply (an untrained score network, whose estimate is not yet
    positively correlated with the samples, or a singular moment matrix) is skipped for that
    call: the estimate is used uncalibrated and a :class:`~mireg.errors.CalibrationWarning` is
    issued once per instance. Preconditioned batches need at least 3 samples. Half precision is
    computed in float32; samples or scores that leave their dtype's range raise
    :class:`~mireg.errors.NonFiniteError`.

    Options:
      score: name of a registered score estimator, or a built ScoreEstimator
      score_options: options of the score estimator when `score` is a name, over its plugin's whitened_options
      precondition: "auto" (full up to d = M/2, else diag), "full" (whiten), "diag" (standardise), "none" (paper)
      shrinkage: shrinkage of the correlation matrix towards the identity used by "full" whitening
      calibrate: "affine" (Stein's identity for affine test functions, see stein_calibrate), "scale" or "none"
      projection_dim: project the x side to this many dimensions when it is wider (scalable SSGE)
      fixed_projection: draw the projection once (from `seed`) instead of at every call
      seed: seed of the fixed projection
      landmarks: larger batches fit the score on this many strided rows, scored at every row (linear in B); None: exact
      value_score: registered name of the nonparametric score estimator `estimate` uses; None: the estimator `score`
      value_score_options: options of `value_score`, over VALUE_SCORE_DEFAULTS and its plugin's whitened_options
      value_t_min, value_t_max, value_points_per_decade: the log-spaced grid of noise variances of `estimate`
      value_draws: noise draws `estimate` averages over
      value_batch: `estimate` values chunks of at least this many rows of a larger batch and averages (linear in B)
      marginal: given mean and log_var, ∇H(z) of the batch's Gaussian mixture ("mixture", exact) or by `score` ("score")
    """

    name = "mige"
    accepts_log_var = True
    accepts_mean = True
    #: Whether this instance has warned that a score estimate could not be calibrated.
    _calibration_warned = False
    #: MIGE gathers across ranks itself: only what it uses, and the data side after projection.
    gather_across_ranks = False
    projection: Tensor | None
    references = (
        "Wen et al., Mutual Information Gradient Estimation for Representation Learning, ICLR 2020",
        "Shi, Sun & Zhu, A Spectral Approach to Gradient Estimation for Implicit Distributions, ICML 2018",
    )

    def __init__(
        self,
        *,
        score: str | type[ScoreEstimator] | ScoreEstimator = DEFAULT_SCORE,
        score_options: dict[str, Any] | None = None,
        precondition: Precondition = "auto",
        shrinkage: Annotated[float, Range(0, 1, high_open=True)] = 1e-3,
        calibrate: Calibrate = "affine",
        projection_dim: Annotated[int, Range(1)] | None = None,
        fixed_projection: bool = False,
        seed: int = 0,
        landmarks: Annotated[int, Range(MIN_PRECONDITIONED_BATCH)] | None = DEFAULT_LANDMARKS,
        value_score: str | None = "stein",
        value_score_options: dict[str, Any] | None = None,
        value_t_min: Annotated[float, Range(0, low_open=True)] = 1e-4,
        value_t_max: Annotated[float, Range(0, low_open=True)] = 10.0,
        value_points_per_decade: Annotated[float, Range(0, low_open=True)] = 2.0,
        value_draws: Annotated[int, Range(1)] = 1,
        value_batch: Annotated[int, Range(MIN_PRECONDITIONED_BATCH)] | None = 512,
        marginal: Marginal = "mixture",
    ) -> None:
        check_options(MIGE, locals())
        if value_score is None and value_score_options:
            raise ValueError(
                "value_score_options apply to a named value_score; with value_score=None `estimate` uses `score`"
            )
        if not value_t_min < value_t_max:
            raise ValueError(f"need value_t_min < value_t_max, got {value_t_min} and {value_t_max}")
        super().__init__()
        prototype = _build_score(score, score_options)
        self.score = prototype.name
        self.score_options = score_options
        self.precondition: Precondition = precondition
        self.shrinkage = shrinkage
        self.calibrate: Calibrate = calibrate
        self.projection_dim = projection_dim
        self.fixed_projection = fixed_projection
        self.seed = seed
        self.landmarks = landmarks
        self.value_score = value_score
        self.value_score_options = value_score_options
        self.value_t_min = value_t_min
        self.value_t_max = value_t_max
        self.value_points_per_decade = value_points_per_decade
        self.value_draws = value_draws
        self.value_batch = value_batch
        self._value_estimator: ScoreEstimator | None = None
        self.marginal: Marginal = marginal
        # One estimator per entropy term: parametric ones (score networks) learn each density.
        terms = ("x", "z", "joint")
        estimators = {t: prototype if not prototype.parametric else copy.deepcopy(prototype) for t in terms}
        if prototype.parametric:
            self.estimators: dict[str, ScoreEstimator] | nn.ModuleDict = nn.ModuleDict(estimators)  # type: ignore[arg-type]
        else:
            self.estimators = estimators
        self.register_buffer("projection", None, persistent=False)

    @classmethod
    def min_batch_size(cls, options: Mapping[str, Any] | None = None) -> int:
        """:data:`MIN_PRECONDITIONED_BATCH` rows, or 2 with ``precondition="none"`` (raw coordinates)."""
        return 2 if (options or {}).get("precondition") == "none" else MIN_PRECONDITIONED_BATCH

    def _entropy(self, term: str, samples: Tensor) -> Tensor:
        (surrogate,) = self._entropies([(term, samples)])
        return surrogate

    def _entropies(self, terms: Sequence[tuple[str, Tensor]]) -> list[Tensor]:
        """The entropy surrogate of each ``(term, samples [B, d])``; terms scored by one estimator object (a
        nonparametric one serves every term) share its fit (:func:`preconditioned_scores`)."""
        groups: dict[int, list[int]] = {}
        for i, (term, _) in enumerate(terms):
            groups.setdefault(id(self.estimators[term]), []).append(i)
        scores: dict[int, Tensor] = {}
        for members in groups.values():
            estimator: ScoreEstimator = self.estimators[terms[members[0]][0]]  # type: ignore[assignment]
            fitted = preconditioned_scores(
                estimator,
                [terms[i][1] for i in members],
                precondition=self.precondition,
                shrinkage=self.shrinkage,
                calibrate=self.calibrate,
                on_uncalibrated=self._uncalibrated,
                landmarks=self.landmarks,
            )
            scores.update(zip(members, fitted, strict=True))
        return [_surrogate(scores[i], samples) for i, (_, samples) in enumerate(terms)]

    def _uncalibrated(self, error: CalibrationError) -> None:
        """Warn, once per instance, that a score estimate is used uncalibrated."""
        if not self._calibration_warned:
            self._calibration_warned = True
            _warn(error, stacklevel=2)

    def _project(self, x: Tensor) -> Tensor:
        """``x`` ``[B, dx]`` projected to ``[B, projection_dim]`` when wider. The Gaussian matrix is drawn
        once from ``seed``; without ``fixed_projection`` its columns get fresh random signs at every
        call (a new random projection for d random bits instead of k · d normals)."""
        k = self.projection_dim
        if k is None or x.shape[1] <= k:
            return x
        matrix = self.projection
        if matrix is None or matrix.shape != (k, x.shape[1]):
            generator = torch.Generator(device=x.device).manual_seed(self.seed)
            matrix = random_projection(x.shape[1], k, generator=generator, dtype=x.dtype, device=x.device)
            self.projection = matrix
        matrix = matrix.to(dtype=x.dtype, device=x.device)
        if not self.fixed_projection:
            matrix = flip_columns(matrix)
        return x @ matrix.T

    def forward(
        self,
        x: Tensor,
        z: Tensor,
        *,
        log_var: Tensor | None = None,
        mean: Tensor | None = None,
        conditional_score: Tensor | None = None,
    ) -> Tensor:
        """Surrogate for ∇I(x; z).

        Args:
            x: ``[B, dx]`` data side (any trailing shape is flattened).
            z: ``[B, dz]`` representation (reparameterised samples for a stochastic encoder).
            log_var: ``[B, dz]`` (or z's unflattened shape, flattened alike) log-variances of a
                Gaussian encoder q(z|x) (Circumstance III, analytic conditional entropy).
            mean: ``[B, dz]`` (or z's unflattened shape) means of that Gaussian encoder, with
                ``log_var`` only: the batch's mixture gives ∇H(z) (see the ``marginal`` option).
            conditional_score: ``[B, dz]`` (or z's unflattened shape) ∇_z log q(z|x) at ``z``
                (Circumstance III with a conditional score from any source).
        Returns:
            A 0-dim tensor whose gradient estimates ∇I(x; z).
        Raises:
            ValueError: with gradients enabled, when no input requires a gradient (the surrogate
                would be a constant; ``estimate`` is the way to ask for values); ``mean`` without
                ``log_var``; a ``log_var``, ``mean`` or ``conditional_score`` not shaped like z.
        """
        if mean is not None and log_var is None:
            raise ValueError(
                "mean (the means of a Gaussian encoder q(z|x)) needs the encoder's log-variances as well: "
                "mi(x, z, mean=mean, log_var=log_var)"
            )
        if log_var is not None or conditional_score is not None:
            return self._stochastic(z, log_var, mean, conditional_score)
        _require_gradient(x, z)
        a, z = gather_rows(self._project(x)), gather_rows(z)  # the data side travels projected
        # I = H(x) + H(z) − H(x, z); a term whose samples need no gradient adds nothing.
        candidates = (("x", a), ("z", z), ("joint", torch.cat([a, z], dim=1)))
        terms = [(name, samples) for name, samples in candidates if samples.requires_grad]
        total = z.new_zeros(())
        for (name, _), entropy in zip(terms, self._entropies(terms), strict=True):
            total = total - entropy if name == "joint" else total + entropy
        return total

    def _stochastic(
        self, z: Tensor, log_var: Tensor | None, mean: Tensor | None, conditional_score: Tensor | None
    ) -> Tensor:
        if log_var is not None and conditional_score is not None:
            raise ValueError("give either log_var (Gaussian encoder) or conditional_score, not both")
        if log_var is not None:
            log_var = gather_rows(_like_z(log_var, "log_var", z))
            mean = None if mean is None else gather_rows(_like_z(mean, "mean", z))
            _require_gradient(z, log_var, *([] if mean is None else [mean]))
        else:
            conditional_score = gather_rows(_like_z(conditional_score, "conditional_score", z))
            _require_gradient(z, conditional_score)
        z = gather_rows(z)  # x is not needed
        if mean is not None and log_var is not None and self.marginal == "mixture":
            # H(q̂) = −E[log q̂(z)], differentiated through the samples and the components alike
            score, to_mean, to_log_var = gaussian_mixture_gradients(z, mean, log_var)
            marginal = _surrogate(score, z) + _surrogate(to_mean, mean) + _surrogate(to_log_var, log_var)
        else:
            marginal = self._entropy("z", z)
        if log_var is not None:  # H(z|x) = E_x[Σ_j log σ_j(x)] + const
            conditional = 0.5 * log_var.sum(-1).mean()
        else:  # ∇H(z|x) = −E[s(z|x)ᵀ ∂z/∂ψ]
            conditional = -(conditional_score.detach() * z).sum(-1).mean()  # type: ignore[union-attr]
        return marginal - conditional

    def _value_score(self) -> ScoreEstimator:
        """The score estimator of ``estimate``: the estimator ``score`` when ``value_score`` is None, else
        ``value_score`` built from the default registry on first use (MIGE builds without its plugin)."""
        if self.value_score is None:
            return self.estimators["joint"]  # type: ignore[return-value]
        if self._value_estimator is None:
            from mireg.registry import default_registry  # the registry loads this module as a default plugin

            try:
                cls = default_registry().get("score", self.value_score).cls
            except UnknownEstimatorError as error:
                raise UnknownEstimatorError(
                    f"MIGE's value_score: {error} (value_score=None values with MIGE's own score estimator)"
                ) from error
            options = {**VALUE_SCORE_DEFAULTS.get(self.value_score, {}), **(self.value_score_options or {})}
            self._value_estimator = _build_score(cls, options, where="value_score_options.")
        return self._value_estimator

    def _estimate(self, x: Tensor, z: Tensor) -> Tensor:
        """I(x; z) in nats from nonparametric score estimates by the heat-flow identity.

        See :func:`mireg.heat_flow.heat_flow_mi`: the ``value_*`` grid and draws, noise from a generator
        seeded with ``seed`` (equal batches give equal values), and per-coordinate normal scores
        (``ranks=True``), without which heavy-tailed coordinates read as dependence. The score
        estimator is ``value_score`` (Stein by default: more accurate values than SSGE,
        benchmarks/results/mi_values.md). A batch of B rows is split into ⌊B / value_batch⌋ chunks
        (each of at least ``value_batch`` rows, and of the 3 (k + dz) + 2 rows a value needs) whose
        values are averaged, so the cost grows linearly in B. With ``projection_dim`` it is
        I(R x; z) ≤ I(x; z), the quantity whose gradient ``forward`` estimates.

        Args:
            x: ``[B, dx]`` data side; z: ``[B, dz]``; B >= 3 (k + dz) + 2, k the projected width.
        Returns:
            A 0-dim tensor without gradient.
        """
        from mireg.heat_flow import heat_flow_mi  # heat_flow builds on this module's preconditioned_score

        a, z = gather_rows(self._project(x)), gather_rows(z)
        generator = torch.Generator(device=a.device).manual_seed(self.seed)
        score = self._value_score()
        fewest = 3 * (a.shape[1] + z.shape[1]) + 2  # rows heat_flow_mi needs; chunks are never smaller
        chunks = max(1, min(a.shape[0] // self.value_batch, a.shape[0] // fewest)) if self.value_batch else 1
        values = [
            heat_flow_mi(
                a[rows],
                z[rows],
                score,
                t_min=self.value_t_min,
                t_max=self.value_t_max,
                points_per_decade=self.value_points_per_decade,
                draws=self.value_draws,
                generator=generator,
                ranks=True,
            )
            for rows in torch.arange(a.shape[0], device=a.device).tensor_split(chunks)
        ]
        return torch.stack(values).mean()


@hookimpl
def register_mi_gradient_estimators(register: Register) -> None:
    """Register :class:`MIGE`: this module is one of mireg's default plugins."""
    register(MIGE)
