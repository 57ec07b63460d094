"""MI values from score estimates by the heat-flow (de Bruijn) identity, with a Gaussian control variate.

**Identity.** Noise both variables, (x_t, y_t) = (x, y) + √t (ε_x, ε_y) with ε ~ N(0, I). The
joint p_t and the product of marginals q_t = p_t(x) p_t(y) both follow the heat equation
∂p/∂t = ½ Δp, so d/dt KL(p_t ‖ q_t) = −½ E_{p_t} ‖∇log p_t − ∇log q_t‖² and KL(p_∞ ‖ q_∞) = 0:

    I(x; y) = ½ ∫₀^∞ F(t) dt,   F(t) = E ‖s_joint,t(x_t, y_t) − (s_x,t(x_t), s_y,t(y_t))‖².

F̂(t) is F with the three scores estimated on one noised batch of M rows. The noise is added in
the coordinates where each side is whitened by its own sample covariance (MI is invariant to
invertible affine maps of x and of y separately; F is not, and whitening makes every direction
unit scale for the isotropic noise and the kernel bandwidth).

**Finite batches.** Written naively this fails in two ways, and two changes fix them.

1. A finite noise draw correlates with the data and across the coordinates, which biases F̂ even
   for exact scores. The noise here has sample mean 0, sample covariance exactly 0 with the data
   and exactly I with itself (:func:`orthogonal_noise`): the noised batch then has sample
   covariance exactly Σ̂ + t I.
2. Kernel score estimators fit dependence that the batch does not have, so F̂ is biased at every
   t. A control variate cancels what F̂ does on Gaussian data: a Gaussian batch g with exactly
   the data's sample covariance Σ̂ (:func:`gaussian_control_batch`) is noised by the same noise
   and F̂_G computed the same way. Then

       Î = I_G(Σ̂) − b(M, d_x, d_y) + ½ ∫ (F̂(t) − F̂_G(t)) dt,

   where I_G(Σ̂) = ½ (log det Σ̂_xx + log det Σ̂_yy − log det Σ̂) is the Gaussian plug-in and b
   its exact finite-sample bias (below). The integral is taken on a log-spaced grid of t
   (trapezoid rule in log t, ∫ f dt = ∫ t f(t) d log t); the Gaussian part of the integrand,
   and with it the grid and truncation errors of that part, cancels in the difference.

**Grid.** The default is 1e-4 ≤ t ≤ 10 in units of each side's whitened scale, 2 points per
decade. At large t the noised joint is close to Gaussian: its relative Fisher information is
set by the second moments to leading order (∝ t⁻²), which the plug-in already carries, so the
true F − F_G falls like t⁻³ and the range beyond t ≈ 10 holds almost none of the correction.
Kernel estimates of t (F̂ − F̂_G) there fall only like t^{-1/2} (the estimation error, not the
density, scales with the bandwidth ∝ √t), so a longer range adds noise of either sign.

**The bias b.** For Gaussian rows, M Σ̂ (Σ̂ the sample covariance about the sample mean,
normalised by M) is Wishart W_p(Σ, M − 1), and E log det W_p(Σ, n) = log det Σ + p log 2 +
Σ_{i=1}^p ψ((n − i + 1)/2) with ψ the digamma function. Hence
E log det Σ̂ = log det Σ + Σ_{i=1}^p [ψ((M − i)/2) + log(2/M)] for every p × p diagonal block
(a block of a Wishart matrix is Wishart with the same n), and the log(2/M) terms cancel in I_G:

    b = E I_G(Σ̂) − I = ½ [Σ_{i=1}^{d_y} ψ((M − i)/2) − Σ_{i=d_x+1}^{d_x+d_y} ψ((M − i)/2)] > 0,

exact for every Gaussian law (it does not depend on Σ), so I_G(Σ̂) − b is unbiased on Gaussians.

**Exactness on Gaussians.** For Gaussian data the whitened batch w is a Haar-random orthonormal
frame times a square root of Σ̂, independent of Σ̂; so is g by construction, and the noise is
left-invariant on the complement of (1, w, g). So (w, noise) and (g, noise) have the same law
given Σ̂, E[F̂ − F̂_G | Σ̂] = 0 for any score estimator, and Î is unbiased on Gaussians. With the
fitted-Gaussian score (exact on Gaussians) F̂ = F̂_G exactly (both depend on the batch only
through its sample covariance Σ̂ + t I), so Î is the bias-corrected plug-in itself.

**Non-Gaussian marginals.** On independent sides with heavy-tailed coordinates the kernel
scores of the joint and of the marginals disagree more than on the Gaussian control, so the
correction reads dependence that is not there. ``ranks=True`` first maps every coordinate to its
normal scores Φ⁻¹(rank / (M + 1)), an increasing map that leaves I unchanged and makes each
marginal coordinate Gaussian; the correction then measures only the non-Gaussian dependence.
The price is a slight attenuation of strong correlations by the rank transform (and the
Gaussian-exactness above no longer holds exactly). What is left unresolved at any setting:
structure finer than the kernel bandwidth, where the estimate falls back to the Gaussian value.

**Invariance.** Every matrix function used is rotation-equivariant (symmetric square roots, the
noise is drawn as H₁ H₂ᵀ w and projected, see :func:`orthogonal_noise`): an invertible affine map
of x or of y turns w, g and the noise into the same rotation of them, so with a
rotation-equivariant score estimator (RBF kernels) the estimate is invariant, draw for draw.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mireg.estimators import ScoreEstimator, check_pair
from mireg.mige import preconditioned_score

__all__ = [
    "gaussian_control_batch",
    "gaussian_mi",
    "gaussian_mi_bias",
    "gaussian_plugin_mi",
    "heat_flow_mi",
    "log_time_grid",
    "normal_scores",
    "orthogonal_noise",
]


def _singular_side(what: str) -> str:
    return (
        f"{what} has a singular sample covariance (a constant or linearly dependent column); "
        "MI needs full-rank data on each side: drop the dependent columns"
    )


#: Raised when the whitened sides are linearly dependent on each other.
SINGULAR_JOINT = (
    "the joint sample covariance of (x, y) is singular: on this batch y is an affine function of x "
    "(or the reverse), and the MI of such a pair is infinite; heat-flow MI needs a full-rank joint "
    "(e.g. a stochastic or nonlinear encoder, or fewer output dimensions)"
)


def _symmetric_power(cov: Tensor, power: float, error: str) -> Tensor:
    """``cov ** power`` ``[d, d]`` of a symmetric positive-definite ``cov`` by its eigendecomposition
    (the symmetric root is rotation-equivariant: (Rᵀ C R)^p = Rᵀ C^p R); ``error`` if it is singular."""
    values, vectors = torch.linalg.eigh(cov)
    if not bool(values.min() > values.max() * cov.shape[0] * torch.finfo(cov.dtype).eps):
        raise ValueError(error)
    return (vectors * values.pow(power)) @ vectors.T


def normal_scores(samples: Tensor) -> Tensor:
    """Each column of ``samples`` ``[M, d]`` replaced by Φ⁻¹(rank / (M + 1)), ranks 1…M (ties broken
    by order): an increasing map per coordinate, so I is unchanged and every marginal is Gaussian."""
    ranks = samples.argsort(0).argsort(0).to(torch.float64) + 1
    return torch.special.ndtri(ranks / (samples.shape[0] + 1))


def _side(samples: Tensor, what: str, ranks: bool) -> Tensor:
    """``samples`` ``[M, d]`` in float64, as normal scores when ``ranks`` (a constant column, which
    ranks would turn into a spurious row-order feature, is refused)."""
    if not ranks:
        return samples.double()
    if bool((samples.amax(0) == samples.amin(0)).any()):
        raise ValueError(_singular_side(what))
    return normal_scores(samples)


def _whiten(samples: Tensor, what: str) -> Tensor:
    """``samples`` ``[M, d]`` centred and mapped to sample covariance exactly I."""
    centred = samples - samples.mean(0, keepdim=True)
    return centred @ _symmetric_power(centred.T @ centred / samples.shape[0], -0.5, _singular_side(what))


def gaussian_mi(cov: Tensor, dx: int) -> Tensor:
    """I of the Gaussian with covariance ``cov`` ``[dx + dy, dx + dy]`` between its first ``dx``
    coordinates and the rest: ½ (log det Σ_xx + log det Σ_yy − log det Σ), 0-dim, nats."""
    return 0.5 * (torch.logdet(cov[:dx, :dx]) + torch.logdet(cov[dx:, dx:]) - torch.logdet(cov))


def gaussian_mi_bias(m: int, dx: int, dy: int) -> float:
    """The exact bias E I_G(Σ̂) − I of the Gaussian plug-in on ``m`` Gaussian rows (module docstring):
    ½ [Σ_{i=1}^{dy} ψ((m − i)/2) − Σ_{i=dx+1}^{dx+dy} ψ((m − i)/2)], in nats; needs m > dx + dy."""
    if m <= dx + dy:
        raise ValueError(f"the Gaussian plug-in needs more rows than dx + dy = {dx + dy}, got M = {m}")
    half = (m - torch.arange(1, dx + dy + 1, dtype=torch.float64)) / 2
    psi = torch.special.digamma(half)
    return float(0.5 * (psi[:dy].sum() - psi[dx:].sum()))


def gaussian_plugin_mi(x: Tensor, y: Tensor) -> Tensor:
    """The bias-corrected Gaussian plug-in I_G(Σ̂) − b from ``x`` ``[M, dx]`` and ``y`` ``[M, dy]``:
    unbiased on Gaussian data, the MI of the Gaussian approximation otherwise. 0-dim float64, nats."""
    x, y = check_pair(x, y)
    joint = torch.cat([x, y], dim=1).double()
    centred = joint - joint.mean(0, keepdim=True)
    cov = centred.T @ centred / joint.shape[0]
    _symmetric_power(cov, 1.0, SINGULAR_JOINT)  # a clear error instead of a NaN log det
    return gaussian_mi(cov, x.shape[1]) - gaussian_mi_bias(joint.shape[0], x.shape[1], y.shape[1])


def _draw_equivariant(w: Tensor, generator: torch.Generator | None) -> Tensor:
    """``H₁ (H₂ᵀ w) / M`` ``[M, D]`` with H₁, H₂ ``[M, D]`` standard normal: Gaussian rows, and
    rotating the columns of ``w`` rotates the draw the same way."""
    device = generator.device if generator is not None else w.device
    first, second = (torch.randn(w.shape, generator=generator, dtype=w.dtype, device=device).to(w.device) for _ in "12")
    return first @ (second.T @ w) / w.shape[0]


def _orthonormalise_against(raw: Tensor, basis: Tensor, what: str) -> Tensor:
    """``raw`` ``[M, D]`` projected off the orthonormal columns of ``basis`` (twice, against
    rounding) and scaled to sample covariance exactly I (symmetric root: equivariant)."""
    for _ in range(2):
        raw = raw - basis @ (basis.T @ raw)
    return raw @ _symmetric_power(raw.T @ raw / raw.shape[0], -0.5, f"{what} is rank-deficient (M too small?)")


def gaussian_control_batch(w: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A Gaussian batch ``[M, D]`` with sample mean 0 and sample covariance exactly that of the
    centred batch ``w`` ``[M, D]``: a Haar-random orthonormal frame times Σ̂^{1/2}."""
    m = w.shape[0]
    root = _symmetric_power(w.T @ w / m, 0.5, SINGULAR_JOINT)
    ones = w.new_full((m, 1), m**-0.5)
    return _orthonormalise_against(_draw_equivariant(w, generator), ones, "the control batch") @ root


def orthogonal_noise(*batches: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Noise ``[M, D]`` with sample mean 0, sample covariance exactly 0 with each centred ``batches``
    ``[M, D]`` and exactly I with itself; needs M ≥ 1 + (len(batches) + 1) D."""
    first = batches[0]
    m = first.shape[0]
    basis = torch.linalg.qr(torch.cat([first.new_ones(m, 1), *batches], dim=1)).Q
    return _orthonormalise_against(_draw_equivariant(first, generator), basis, "the noise")


def log_time_grid(t_min: float, t_max: float, points_per_decade: float) -> Tensor:
    """Log-spaced noise variances ``[T]`` from ``t_min`` to ``t_max`` (float64), at least
    ``points_per_decade`` per decade, both ends included."""
    if not 0 < t_min < t_max or not math.isfinite(t_max):
        raise ValueError(f"need 0 < t_min < t_max < inf, got t_min = {t_min}, t_max = {t_max}")
    if not points_per_decade > 0:
        raise ValueError(f"points_per_decade must be > 0, got {points_per_decade}")
    count = math.ceil(math.log10(t_max / t_min) * points_per_decade) + 1
    return torch.logspace(math.log10(t_min), math.log10(t_max), count, dtype=torch.float64)


def _fisher_gap(score: ScoreEstimator, batch: Tensor, dx: int) -> Tensor:
    """F̂ = mean_i ‖ŝ_joint(b_i) − (ŝ_x(b_i,x), ŝ_y(b_i,y))‖² of a noised batch ``[M, D]``, 0-dim."""
    joint = preconditioned_score(score, batch, precondition="full")
    parts = batch.split([dx, batch.shape[1] - dx], dim=1)
    sides = [preconditioned_score(score, part, precondition="full") for part in parts]
    return (joint - torch.cat(sides, dim=1)).pow(2).sum(-1).mean()


def heat_flow_mi(
    x: Tensor,
    y: Tensor,
    score: ScoreEstimator,
    *,
    t_min: float = 1e-4,
    t_max: float = 10.0,
    points_per_decade: float = 2.0,
    draws: int = 1,
    generator: torch.Generator | None = None,
    ranks: bool = False,
) -> Tensor:
    """I(x; y) in nats from score estimates by the heat-flow identity (module docstring).

    Args:
        x: ``[M, dx]`` samples (trailing shapes are flattened), paired row by row with ``y``.
        y: ``[M, dy]``.
        score: a nonparametric score estimator, refitted on every noised batch.
        t_min, t_max, points_per_decade: the log-spaced grid of noise variances, in units of each
            side's own (whitened) scale.
        draws: noise draws (each with its own control batch) the correction is averaged over.
        generator: the source of the noise and of the control batches (default: torch's global one).
        ranks: replace every coordinate by its normal scores first (:func:`normal_scores`). Kernel
            estimators report dependence where there is none when the marginals are far from
            Gaussian (heavy tails), and the Gaussian control does not cancel that; per-coordinate
            normal scores remove it for coordinate-wise non-Gaussianity. Then the estimate is no
            longer exactly unbiased on Gaussians (ranks attenuate strong correlations slightly), and
            the draw-for-draw invariance holds for increasing maps of each coordinate instead of
            for affine maps that mix coordinates.
    Returns:
        A 0-dim tensor without gradient, in the dtype of ``x``. Whitening, noise and control batch are
        computed in float64, the scores in the dtype of ``x`` (float32 halves their cost).
    Raises:
        ValueError: mismatched rows, NaN/Inf, M < 3 (dx + dy) + 2 (the noise must be orthogonal to
            the data and to the control batch), singular sample covariances, a bad grid or ``draws``.
    """
    x, y = check_pair(x, y)
    if score.parametric:
        raise ValueError(
            f"heat-flow MI refits the score on every noised batch; {type(score).__name__} is parametric "
            "(it learns across calls): use a nonparametric estimator such as 'stein' or 'ssge'"
        )
    if draws < 1:
        raise ValueError(f"draws must be a positive integer, got {draws}")
    m, dx, dy = x.shape[0], x.shape[1], y.shape[1]
    if m < 3 * (dx + dy) + 2:
        raise ValueError(
            f"heat-flow MI needs M >= 3 (dx + dy) + 2 = {3 * (dx + dy) + 2} rows for dx = {dx}, dy = {dy}, "
            f"got M = {m}: use a larger batch or fewer dimensions (e.g. MIGE's projection_dim)"
        )
    times = log_time_grid(t_min, t_max, points_per_decade)
    with torch.no_grad():
        w = torch.cat([_whiten(_side(x, "x", ranks), "x"), _whiten(_side(y, "y", ranks), "y")], dim=1)
        cov = w.T @ w / m
        plugin = gaussian_mi(cov, dx) - gaussian_mi_bias(m, dx, dy)
        corrections = []
        for _ in range(draws):
            control = gaussian_control_batch(w, generator)
            noise = orthogonal_noise(w, control, generator=generator)
            gaps = torch.stack(
                [
                    _fisher_gap(score, (w + t.sqrt() * noise).to(x.dtype), dx)
                    - _fisher_gap(score, (control + t.sqrt() * noise).to(x.dtype), dx)
                    for t in times
                ]
            ).double()
            corrections.append(0.5 * torch.trapezoid(times * gaps, times.log()))
        return (plugin + torch.stack(corrections).mean()).to(x.dtype)
