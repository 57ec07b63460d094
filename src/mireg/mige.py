"""MIGE: the mutual-information gradient from score estimates (paper §3).

Entropy gradient (DESIGN.md §2): for reparameterised samples z = g_ψ(ε),
∇_ψ H(z) = −E[s(z)ᵀ ∂z/∂ψ] with s = ∇_z log q(z). The scalar

    entropy_surrogate(z) = −mean_i ⟨sg(ŝ(z_i)), z_i⟩

therefore has gradient ∇_ψ H(z) (``sg`` = detach). MIGE combines such terms:

* Circumstances I and II (deterministic or two-stage encoder):
  I(x; z) = H(x) + H(z) − H(x, z), each score estimated on the detached batch; a term whose
  input needs no gradient (the data side in Circumstance I) is skipped.
* Circumstance III (stochastic encoder): ∇I(x; z) = ∇H(z) − ∇H(z|x), the conditional term
  given analytically (Gaussian encoder: H(z|x) = E[Σ log σ] + const) or by a conditional score.
* Scalable SSGE: the data side is projected by a random ``[k, d]`` matrix (paper eq. 18-19).

Calibration (the default, ``calibrate="affine"``): the estimated score is corrected to satisfy
Stein's identity for affine test functions, E[s] = 0 and E[(z − μ) sᵀ] = −I, which makes the
entropy gradient exact along every affine direction (see :func:`stein_calibrate`).

Preconditioning (the default, ``precondition="auto"``: full whitening while d ≤ M/2, per-coordinate
standardisation beyond, where a covariance estimated from M ≈ d samples would whiten the batch
into nearly equidistant points): scores are estimated on the batch
whitened by its own covariance, u = W(z − μ), and mapped back, s_z = Wᵀ s_u. Kernel score
estimators with one isotropic bandwidth fail on strongly correlated batches (the joint of
(x, y) at |ρ| → 1 has covariance eigenvalues 1 ± ρ): the median bandwidth follows the wide
directions and the score along the narrow one, which dominates ∇I, is underestimated. Whitening
makes every direction unit scale; the paper's raw-coordinate setting is ``precondition="none"``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, nn

from mireg.distributed import gather_rows
from mireg.estimators import MIGradientEstimator, ScoreEstimator, check_finite, check_samples
from mireg.projection import random_projection

Precondition = Literal["auto", "full", "diag", "none"]
PRECONDITIONS = ("auto", "full", "diag", "none")
Calibrate = Literal["affine", "scale", "none"]

#: Score options MIGE uses when ``score_options`` is not given, per score estimator. Measured on the
#: correlated-Gaussian toy (benchmarks/toy_gradient.py, whitened batches, no calibration, 10 seeds):
#: SSGE with eta = 0, threshold 0.999 and twice the median bandwidth stays within 2.5% of dI/dρ
#: for d ∈ {5, 10, 20}, |ρ| ≤ 0.99 at batch 128 and 512; its stand-alone defaults (eta = 0.1,
#: threshold 0.99, median bandwidth) shrink the score and return 0.75-0.98 of the truth.
TUNED_SCORE_OPTIONS: dict[str, dict[str, Any]] = {
    "ssge": {"eta": 0.0, "threshold": 0.999, "bandwidth_multiplier": 2.0},
}


def _build_score(
    score: str | ScoreEstimator, options: dict[str, Any] | None, *, where: str = "score_options."
) -> ScoreEstimator:
    if isinstance(score, ScoreEstimator):
        if options:
            raise ValueError("score_options apply only when `score` is a name; the given estimator is already built")
        return score
    from mireg.registry import default_registry

    options = {**TUNED_SCORE_OPTIONS.get(score, {}), **(options or {})}  # given options override tuned ones
    estimator: ScoreEstimator = default_registry().create("score", score, options, where=where)
    return estimator


def _whiten(centred: Tensor, shrinkage: float) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """Whitened rows ``u [M, d]`` of ``centred`` and the map of a score in u back to z."""
    cov = centred.T @ centred * ((1 - shrinkage) / centred.shape[0])
    scale = cov.diagonal().mean().clamp_min(torch.finfo(centred.dtype).tiny) / (1 - shrinkage)
    cov.diagonal().add_(shrinkage * scale)  # shrink towards the mean variance: invertible for d >= M
    # Whitener W = L⁻¹ with Σ = L Lᵀ: u = (z − μ) L⁻ᵀ row-wise and s_z = s_u L⁻¹. A Cholesky
    # factor costs a fraction of an eigendecomposition; the rotation it leaves relative to the
    # symmetric Σ^{-1/2} does not matter to estimators with rotation-invariant kernels.
    factor, info = torch.linalg.cholesky_ex(cov)
    if bool(info.any()):
        raise ValueError(
            "the batch covariance is singular even after shrinkage; increase `shrinkage` (now "
            f"{shrinkage}) or use precondition='diag'"
        )
    whitened = torch.linalg.solve_triangular(factor.T, centred, upper=True, left=False)
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
    """
    if mode == "none":
        return score
    m, d = score.shape
    score = score - score.mean(0, keepdim=True)
    moment = -(centred.T @ score) / m  # G, [d, d]; the identity for the true score
    mean_diag = moment.diagonal().mean()
    if not bool(mean_diag > 0):
        raise ValueError(
            "the score estimate is not positively correlated with the samples (−mean⟨z − μ, ŝ⟩ ≤ 0); "
            "it cannot be calibrated: check the score estimator's options or use calibrate='none'"
        )
    if mode == "scale":
        return score / mean_diag
    weight = d / (d + m)
    moment = (1 - weight) * moment
    moment.diagonal().add_(weight * mean_diag)
    return torch.linalg.solve(moment, score, left=False)


def preconditioned_score(
    estimator: ScoreEstimator,
    samples: Tensor,
    *,
    precondition: Precondition = "auto",
    shrinkage: float = 1e-3,
    calibrate: Calibrate = "none",
) -> Tensor:
    """The score of ``samples`` ``[M, d]`` at the samples, estimated in preconditioned coordinates.

    ``precondition``: ``"full"`` whitens with the batch covariance, shrunk towards its mean
    variance by ``shrinkage`` (so it stays invertible when d ≥ M); ``"diag"`` standardises each
    coordinate; ``"none"`` uses the raw coordinates; ``"auto"`` is ``"full"`` while d ≤ M/2 and
    ``"diag"`` beyond (the spread of pairwise distances of a batch whitened by its own
    covariance falls to 0.71 of the raw spread at d = M/2, 0.5 at d = 3M/4, 0.1 at d = M).
    ``calibrate``: see :func:`stein_calibrate`, applied in the preconditioned coordinates.
    Returns ``[M, d]``, detached.
    """
    samples = samples.detach()
    centred = samples - samples.mean(0, keepdim=True)
    if precondition == "auto":
        precondition = "full" if 2 * samples.shape[1] <= samples.shape[0] else "diag"
    if precondition == "none":
        return stein_calibrate(estimator.score(samples), centred, calibrate).detach()
    if precondition == "diag":
        std = centred.pow(2).mean(0).add(torch.finfo(samples.dtype).eps).sqrt()
        return (stein_calibrate(estimator.score(centred / std), centred / std, calibrate) / std).detach()
    if precondition != "full":
        raise ValueError(f"precondition must be one of {PRECONDITIONS}, got {precondition!r}")
    whitened, back = _whiten(centred, shrinkage)
    return back(stein_calibrate(estimator.score(whitened), whitened, calibrate)).detach()


def entropy_surrogate(
    z: Tensor,
    score: str | ScoreEstimator = "ssge",
    *,
    score_options: dict[str, Any] | None = None,
    precondition: Precondition = "auto",
    shrinkage: float = 1e-3,
    calibrate: Calibrate = "affine",
) -> Tensor:
    """A scalar whose gradient w.r.t. everything upstream of ``z`` estimates ∇H(z).

    Args:
        z: reparameterised samples ``[M, d]`` (rows i.i.d. from q_ψ).
        score: a registered score-estimator name or a built :class:`~mireg.ScoreEstimator`.
        score_options: options for ``score`` when it is a name.
        precondition, shrinkage, calibrate: see :func:`preconditioned_score`.
    Returns:
        ``−mean_i ⟨sg(ŝ(z_i)), z_i⟩``, a 0-dim tensor; ascend it to maximise entropy.
    """
    z, _ = check_samples(z)
    estimator = _build_score(score, score_options)
    if estimator.parametric and isinstance(score, str):
        raise ValueError(
            f"{score!r} is a parametric score estimator that learns across calls: build it once "
            f"(est = mireg.score_estimator({score!r})) and pass `score=est` at every call"
        )
    s = preconditioned_score(estimator, z, precondition=precondition, shrinkage=shrinkage, calibrate=calibrate)
    return -(s * z).sum(-1).mean()


class MIGE(MIGradientEstimator):
    """Mutual Information Gradient Estimator: ∇I from score estimates of marginals and joint.

    ``mi(x, z)`` returns a surrogate whose autograd gradient is the MIGE estimate of ∇I(x; z)
    (its value is not an MI estimate; ``estimate`` returns ``None``). With ``log_var`` or
    ``conditional_score`` it uses Circumstance III, ∇H(z) − ∇H(z|x), for stochastic encoders.

    Defaults were chosen on the correlated-Gaussian toy (``benchmarks/toy_gradient.py``, d ≤ 32,
    0.5 ≤ |ρ| ≤ 0.99, 10 seeds): SSGE on whitened, calibrated batches returns 0.99-1.02 of dI/dρ
    at batch 512 and 0.99-1.05 at batch 128 (0.96-1.04 uncalibrated), and 0.82-1.01 on the
    warped, non-Gaussian toy; the raw-coordinate setting of the paper (``precondition="none",
    calibrate="none"``) returns 0.03-0.6 of it at |ρ| = 0.99.

    Options:
      score: name of a registered score estimator, or a built ScoreEstimator
      score_options: options of the score estimator when `score` is a name, on top of TUNED_SCORE_OPTIONS
      precondition: "auto" (full up to d = M/2, else diag), "full" (whiten), "diag" (standardise), "none" (paper)
      shrinkage: covariance shrinkage towards the mean variance used by "full" whitening
      calibrate: "affine" (Stein's identity for affine test functions, see stein_calibrate), "scale" or "none"
      projection_dim: project the x side to this many dimensions when it is wider (scalable SSGE)
      fixed_projection: draw the projection once (from `seed`) instead of at every call
      seed: seed of the fixed projection
    """

    name = "mige"
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
        score: str | ScoreEstimator = "ssge",
        score_options: dict[str, Any] | None = None,
        precondition: Precondition = "auto",
        shrinkage: float = 1e-3,
        calibrate: Calibrate = "affine",
        projection_dim: int | None = None,
        fixed_projection: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 <= shrinkage < 1.0:
            raise ValueError(f"shrinkage must be in [0, 1), got {shrinkage}")
        if projection_dim is not None and projection_dim < 1:
            raise ValueError(f"projection_dim must be a positive integer or None, got {projection_dim}")
        if precondition not in PRECONDITIONS:
            raise ValueError(f"precondition must be one of {PRECONDITIONS}, got {precondition!r}")
        if calibrate not in ("affine", "scale", "none"):
            raise ValueError(f"calibrate must be 'affine', 'scale' or 'none', got {calibrate!r}")
        prototype = _build_score(score, score_options)
        self.score = score if isinstance(score, str) else type(score).name
        self.score_options = score_options
        self.precondition: Precondition = precondition
        self.shrinkage = shrinkage
        self.calibrate: Calibrate = calibrate
        self.projection_dim = projection_dim
        self.fixed_projection = fixed_projection
        self.seed = seed
        # One estimator per entropy term: parametric ones (score networks) learn each density.
        terms = ("x", "z", "joint")
        estimators = {t: prototype if not prototype.parametric else copy.deepcopy(prototype) for t in terms}
        if prototype.parametric:
            self.estimators: dict[str, ScoreEstimator] | nn.ModuleDict = nn.ModuleDict(estimators)  # type: ignore[arg-type]
        else:
            self.estimators = estimators
        self.register_buffer("projection", None, persistent=False)

    def _entropy(self, term: str, samples: Tensor) -> Tensor:
        estimator: ScoreEstimator = self.estimators[term]  # type: ignore[assignment]
        s = preconditioned_score(
            estimator, samples, precondition=self.precondition, shrinkage=self.shrinkage, calibrate=self.calibrate
        )
        return -(s * samples).sum(-1).mean()

    def _project(self, x: Tensor) -> Tensor:
        k = self.projection_dim
        if k is None or x.shape[1] <= k:
            return x
        matrix = self.projection
        if not self.fixed_projection or matrix is None or matrix.shape != (k, x.shape[1]):
            generator = None
            if self.fixed_projection:
                generator = torch.Generator(device=x.device).manual_seed(self.seed)
            matrix = random_projection(x.shape[1], k, generator=generator, dtype=x.dtype, device=x.device)
            if self.fixed_projection:
                self.projection = matrix
        return x @ matrix.to(dtype=x.dtype, device=x.device).T

    def forward(
        self, x: Tensor, z: Tensor, *, log_var: Tensor | None = None, conditional_score: Tensor | None = None
    ) -> Tensor:
        """Surrogate for ∇I(x; z).

        Args:
            x: ``[B, dx]`` data side (any trailing shape is flattened).
            z: ``[B, dz]`` representation (reparameterised samples for a stochastic encoder).
            log_var: ``[B, dz]`` log-variances of a Gaussian encoder q(z|x) (Circumstance III,
                analytic conditional entropy).
            conditional_score: ``[B, dz]`` ∇_z log q(z|x) at ``z`` (Circumstance III with a
                conditional score from any source).
        Returns:
            A 0-dim tensor whose gradient estimates ∇I(x; z).
        """
        if log_var is not None or conditional_score is not None:
            return self._stochastic(z, log_var, conditional_score)
        a, z = gather_rows(self._project(x)), gather_rows(z)  # the data side travels projected
        total = z.new_zeros(())
        if a.requires_grad:
            total = total + self._entropy("x", a)
        if z.requires_grad:
            total = total + self._entropy("z", z)
        joint = torch.cat([a, z], dim=1)
        if joint.requires_grad:
            total = total - self._entropy("joint", joint)
        return total

    def _stochastic(self, z: Tensor, log_var: Tensor | None, conditional_score: Tensor | None) -> Tensor:
        if log_var is not None and conditional_score is not None:
            raise ValueError("give either log_var (Gaussian encoder) or conditional_score, not both")
        given = log_var if log_var is not None else conditional_score
        assert given is not None
        if given.shape != z.shape:
            name = "log_var" if log_var is not None else "conditional_score"
            raise ValueError(f"{name} must have the shape of z {tuple(z.shape)}, got {tuple(given.shape)}")
        check_finite(given, "log_var" if log_var is not None else "conditional_score")
        z, given = gather_rows(z), gather_rows(given)  # x is not needed
        log_var, conditional_score = (given, None) if log_var is not None else (None, given)
        marginal = self._entropy("z", z)
        if log_var is not None:  # H(z|x) = E_x[Σ_j log σ_j(x)] + const
            conditional = 0.5 * log_var.sum(-1).mean()
        else:  # ∇H(z|x) = −E[s(z|x)ᵀ ∂z/∂ψ]
            conditional = -(conditional_score.detach() * z).sum(-1).mean()  # type: ignore[union-attr]
        return marginal - conditional

    def estimate(self, x: Tensor, z: Tensor) -> Tensor:
        """I(x; z) in nats from this estimator's score estimates by the heat-flow identity.

        See :func:`mireg.heat_flow.heat_flow_mi`: default grid, one noise draw from a generator
        seeded with ``seed`` (equal batches give equal values), and per-coordinate normal scores
        (``ranks=True``), without which heavy-tailed coordinates read as dependence
        (benchmarks/mi_values.py). With ``projection_dim`` it is I(R x; z) ≤ I(x; z), the
        quantity whose gradient ``forward`` estimates.

        Args:
            x: ``[B, dx]`` data side; z: ``[B, dz]``; B >= 3 (k + dz) + 2 with k the projected width.
        Returns:
            A 0-dim tensor without gradient.
        """
        from mireg.heat_flow import heat_flow_mi  # heat_flow builds on this module's preconditioned_score

        a, z = gather_rows(self._project(x)), gather_rows(z)
        generator = torch.Generator(device=a.device).manual_seed(self.seed)
        estimator: ScoreEstimator = self.estimators["joint"]  # type: ignore[assignment]
        return heat_flow_mi(a, z, estimator, generator=generator, ranks=True)
