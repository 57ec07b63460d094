"""Closed-form distributions and MI toys for testing score and MI-gradient estimators.

Public helpers for mireg's own tests and benchmarks and for third-party plugin authors: every
distribution has an analytic score ∇ log p (and log density), so an estimator's output can be
compared with the truth by :func:`relative_rmse`. Everything is deterministic given a
:class:`torch.Generator` (or a seed): parameters and samples are drawn in float64 on the CPU and
cast to the distribution's ``dtype``, so float32 and float64 runs see the same points.

Example::

    from mireg.testing import Gaussian, relative_rmse, sample_with_score

    g = torch.Generator().manual_seed(0)
    dist = Gaussian(10, generator=g, dtype=torch.float32)
    x, score = sample_with_score(dist, 512, g)          # [512, 10] each
    assert relative_rmse(my_estimator.score(x), score) < 0.4

The correlated-Gaussian toy (docs/math.md): x, ε ~ N(0, I_d), y = ρ x + sqrt(1 − ρ²) ε has
I(x; y) = −(d/2) log(1 − ρ²) and dI/dρ = ρ d / (1 − ρ²); see :func:`correlated_gaussians`.
:func:`train_mi_estimator` trains an MI estimator's critic on it and returns its estimate::

    from mireg.testing import correlated_gaussian_mi, train_mi_estimator

    mi, value = train_mi_estimator("mine", 5, 0.5, steps=600, hidden=64)
    assert abs(value - correlated_gaussian_mi(5, 0.5)) < 0.15
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional

import mireg
from mireg.estimators import MIGradientEstimator, ScoreEstimator

__all__ = [
    "ClosedFormDistribution",
    "FittedGaussianScore",
    "Gaussian",
    "GaussianMixture",
    "StandardNormal",
    "bad_kernel_score_inputs",
    "correlated_gaussian_log_ratio",
    "correlated_gaussian_mi",
    "correlated_gaussian_mi_grad",
    "correlated_gaussian_two_js",
    "correlated_gaussians",
    "relative_rmse",
    "sample_with_score",
    "seeded_sample_with_score",
    "toy_gradient_ratio",
    "train_mi_estimator",
    "warp",
]

_F64 = torch.float64


def _generator(generator: torch.Generator | None, seed: int) -> torch.Generator:
    return generator if generator is not None else torch.Generator().manual_seed(seed)


class ClosedFormDistribution(ABC):
    """A distribution on R^d with analytic log density and score.

    Attributes:
        dim: the dimension d.
        dtype: the dtype of :meth:`sample` (computations happen in float64 first).
    """

    def __init__(self, dim: int, dtype: torch.dtype) -> None:
        if dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim}")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        self.dim = dim
        self.dtype = dtype

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` i.i.d. samples ``[n, d]`` in :attr:`dtype` (CPU), drawn from ``generator``."""
        return self._sample64(n, generator).to(self.dtype)

    def score(self, x: Tensor) -> Tensor:
        """∇_x log p(x) at ``x`` ``[..., d]`` -> ``[..., d]``, in the dtype and on the device of ``x``."""
        return self._score64(x.to(_F64)).to(device=x.device, dtype=x.dtype)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) at ``x`` ``[..., d]`` -> ``[...]``, differentiable in ``x``."""
        return self._log_prob(x)

    @abstractmethod
    def _sample64(self, n: int, generator: torch.Generator) -> Tensor:
        """``[n, d]`` float64 samples."""

    @abstractmethod
    def _score64(self, x: Tensor) -> Tensor:
        """The score at float64 ``x`` ``[..., d]``."""

    @abstractmethod
    def _log_prob(self, x: Tensor) -> Tensor:
        """log p at ``x`` ``[..., d]`` -> ``[...]`` (in the dtype of ``x``)."""


class StandardNormal(ClosedFormDistribution):
    """N(0, I_d): score −x. The case MIGE sees after whitening a batch."""

    def __init__(self, dim: int, *, dtype: torch.dtype = _F64) -> None:
        super().__init__(dim, dtype)

    def _sample64(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.randn(n, self.dim, generator=generator, dtype=_F64)

    def _score64(self, x: Tensor) -> Tensor:
        return -x

    def _log_prob(self, x: Tensor) -> Tensor:
        return -0.5 * x.pow(2).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)


class Gaussian(ClosedFormDistribution):
    """Anisotropic N(μ, Σ) with Σ = Q diag(λ) Qᵀ, λ log-spaced over ``variance_range``.

    Q (a random orthogonal ``[d, d]``) and then μ = ``mean_scale`` · N(0, I_d) are drawn from
    ``generator`` (or a new one seeded with ``seed``), in that order. Score −Σ⁻¹ (x − μ).

    Args:
        dim: d.
        generator: the source of Q and μ; it advances, so samples drawn from it afterwards
            continue the same stream.
        seed: used only when ``generator`` is None.
        variance_range: (smallest, largest) eigenvalue of Σ; their ratio is its condition number.
        mean_scale: standard deviation of the entries of μ.
        dtype: dtype of samples and parameters.
    """

    def __init__(
        self,
        dim: int,
        *,
        generator: torch.Generator | None = None,
        seed: int = 0,
        variance_range: tuple[float, float] = (0.25, 4.0),
        mean_scale: float = 1.0,
        dtype: torch.dtype = _F64,
    ) -> None:
        super().__init__(dim, dtype)
        low, high = variance_range
        if not 0 < low <= high:
            raise ValueError(f"variance_range must satisfy 0 < low <= high, got {variance_range}")
        g = _generator(generator, seed)
        self.basis = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=_F64)).Q  # Q [d, d]
        self.variances = torch.logspace(math.log10(low), math.log10(high), dim, dtype=_F64)  # λ [d]
        self.mean = mean_scale * torch.randn(dim, generator=g, dtype=_F64)  # μ [d]

    @property
    def covariance(self) -> Tensor:
        """Σ ``[d, d]`` (float64)."""
        return (self.basis * self.variances) @ self.basis.T

    def _sample64(self, n: int, generator: torch.Generator) -> Tensor:
        noise = torch.randn(n, self.dim, generator=generator, dtype=_F64)
        return self.mean + (noise * self.variances.sqrt()) @ self.basis.T

    def _score64(self, x: Tensor) -> Tensor:
        basis, variances, mean = (t.to(x.device) for t in (self.basis, self.variances, self.mean))
        return -((x - mean) @ basis / variances) @ basis.T

    def _log_prob(self, x: Tensor) -> Tensor:
        basis, variances, mean = (t.to(device=x.device, dtype=x.dtype) for t in (self.basis, self.variances, self.mean))
        rotated = (x - mean) @ basis
        quad = (rotated.pow(2) / variances).sum(-1)
        return -0.5 * (quad + variances.log().sum() + self.dim * math.log(2 * math.pi))


class GaussianMixture(ClosedFormDistribution):
    """Two components: ``weight`` · N(a u, I) + (1 − ``weight``) · N(−a u, I), |u| = 1, a = ``separation``.

    u is drawn from ``generator`` (or a new one seeded with ``seed``). Bimodal along u for
    a > 1. Score −(x − Σ_k r_k(x) μ_k) with the responsibilities r_k.

    Args:
        dim: d.
        generator: the source of u (it advances).
        seed: used only when ``generator`` is None.
        weight: probability of the component at +a u, in (0, 1).
        separation: a, the distance of each mean from the origin.
        dtype: dtype of the samples.
    """

    def __init__(
        self,
        dim: int,
        *,
        generator: torch.Generator | None = None,
        seed: int = 0,
        weight: float = 0.3,
        separation: float = 1.5,
        dtype: torch.dtype = _F64,
    ) -> None:
        super().__init__(dim, dtype)
        if not 0 < weight < 1:
            raise ValueError(f"weight must be in (0, 1), got {weight}")
        direction = torch.randn(dim, generator=_generator(generator, seed), dtype=_F64)
        self.shift = separation * direction / direction.norm()  # a u [d]
        self.weight = weight

    def _sample64(self, n: int, generator: torch.Generator) -> Tensor:
        first = torch.rand(n, generator=generator, dtype=_F64) < self.weight
        noise = torch.randn(n, self.dim, generator=generator, dtype=_F64)
        return noise + torch.where(first[:, None], self.shift, -self.shift)

    def _score64(self, x: Tensor) -> Tensor:
        u = self.shift.to(x.device)
        logit = math.log(self.weight / (1 - self.weight)) - 0.5 * (x - u).pow(2).sum(-1) + 0.5 * (x + u).pow(2).sum(-1)
        r = torch.sigmoid(logit).unsqueeze(-1)  # responsibility of the +a u component
        return -(x - u) * r - (x + u) * (1 - r)

    def _log_prob(self, x: Tensor) -> Tensor:
        u = self.shift.to(device=x.device, dtype=x.dtype)
        log_weights = (math.log(self.weight), math.log(1 - self.weight))
        parts = torch.stack([w - 0.5 * (x - m).pow(2).sum(-1) for w, m in zip(log_weights, (u, -u), strict=True)])
        return parts.logsumexp(0) - 0.5 * self.dim * math.log(2 * math.pi)


def sample_with_score(dist: ClosedFormDistribution, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` samples and their true scores, ``([n, d], [n, d])`` in ``dist.dtype``.

    The score is computed from the float64 samples before the cast, so it is the exact score of
    the float64 points (and within rounding of the score of the cast ones).
    """
    x = dist._sample64(n, generator)
    return x.to(dist.dtype), dist._score64(x).to(dist.dtype)


def seeded_sample_with_score(
    kind: str, n: int, dim: int, dtype: torch.dtype = torch.float32, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """``n`` samples and their true scores, ``([n, d], [n, d])`` in ``dtype``, of the distribution
    named ``kind`` — ``"gaussian"`` (:class:`Gaussian`) or ``"mixture"`` (:class:`GaussianMixture`,
    weight 0.3) — whose parameters and samples come from one generator seeded with ``seed``."""
    laws: dict[str, type[Gaussian] | type[GaussianMixture]] = {"gaussian": Gaussian, "mixture": GaussianMixture}
    if kind not in laws:
        raise ValueError(f"unknown distribution {kind!r}; use one of {sorted(laws)}")
    generator = torch.Generator().manual_seed(seed)
    return sample_with_score(laws[kind](dim, generator=generator, dtype=dtype), n, generator)


def relative_rmse(estimate: Tensor, truth: Tensor) -> float:
    """``sqrt(mean |ŝ − s|²) / sqrt(mean |s|²)`` over the rows of ``[..., N, d]`` tensors (in float64)."""
    if estimate.shape != truth.shape:
        raise ValueError(
            f"estimate and truth must have the same shape, got {tuple(estimate.shape)} and {tuple(truth.shape)}"
        )
    error = (estimate.double() - truth.double()).pow(2).sum(-1).mean()
    return float((error / truth.double().pow(2).sum(-1).mean()).sqrt())


def bad_kernel_score_inputs() -> list[tuple[Tensor, Tensor | None, str]]:
    """``(samples, at, message)``: inputs a median-heuristic kernel score estimator must refuse with a
    ``ValueError`` matching ``message`` (NaN, Inf, one sample, no sample axis, ``at`` of the wrong
    width ``[4, 2]`` for samples ``[10, 3]``, identical samples whose median distance is 0)."""
    return [
        (torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), None, "NaN/Inf"),
        (torch.tensor([[0.0, float("inf")], [1.0, 2.0]]), None, "NaN/Inf"),
        (torch.randn(1, 3), None, "at least 2 samples"),
        (torch.randn(5), None, "shape"),
        (torch.randn(10, 3), torch.randn(4, 2), "at must have shape"),
        (torch.ones(10, 3), None, "median pairwise distance"),
    ]


def correlated_gaussians(
    n: int,
    dim: int,
    rho: float | Tensor,
    generator: torch.Generator,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """The MI toy: x, ε ~ N(0, I_d) and y = ρ x + sqrt(1 − ρ²) ε, each ``[n, d]``.

    ``rho`` may be a tensor that requires grad (a leaf): y is then differentiable in it, so
    ``mi(x, y).backward()`` puts an estimate of :func:`correlated_gaussian_mi_grad` into ``rho.grad``.
    The draws come from ``generator`` (on its device) and are moved to ``device``, by default the
    device of a tensor ``rho`` (else the generator's): the same seed gives the same samples anywhere.
    """
    rho_value = float(rho.detach()) if isinstance(rho, Tensor) else float(rho)
    if not -1 < rho_value < 1:
        raise ValueError(f"rho must be in (-1, 1), got {rho_value}")
    if device is None:
        device = rho.device if isinstance(rho, Tensor) else generator.device
    x = torch.randn(n, dim, generator=generator, dtype=_F64, device=generator.device).to(device=device, dtype=dtype)
    noise = torch.randn(n, dim, generator=generator, dtype=_F64, device=generator.device).to(device=device, dtype=dtype)
    r = rho.to(dtype) if isinstance(rho, Tensor) else torch.tensor(rho, dtype=dtype, device=device)
    return x, r * x + (1 - r.pow(2)).sqrt() * noise


def correlated_gaussian_mi(dim: int, rho: float) -> float:
    """I(x; y) = −(d/2) log(1 − ρ²) of :func:`correlated_gaussians`, in nats."""
    return -0.5 * dim * math.log1p(-rho * rho)


def correlated_gaussian_mi_grad(dim: int, rho: float) -> float:
    """dI/dρ = ρ d / (1 − ρ²) of :func:`correlated_gaussians`."""
    return rho * dim / (1 - rho * rho)


def warp(t: Tensor) -> Tensor:
    """The warped toy's invertible per-coordinate map t ↦ t + 0.4 t³ (any shape): I(warp(x); warp(y)) = I(x; y)
    and dI/dρ are those of :func:`correlated_gaussians`, but the joint is not Gaussian."""
    return t + 0.4 * t**3


def toy_gradient_ratio(
    mi: Callable[[Tensor, Tensor], Tensor], dim: int, rho: float, m: int, seeds: int = 10, *, warped: bool = False
) -> float:
    """Mean over ``seeds`` batches of ``m`` rows of the dI/dρ that ``mi(x, y).backward()`` puts into ρ,
    divided by the truth :func:`correlated_gaussian_mi_grad` (1 is exact); the toy is
    :func:`correlated_gaussians` with batch ``seed`` drawn from a generator seeded ``seed``, each
    coordinate mapped by :func:`warp` when ``warped``."""
    grads = []
    for seed in range(seeds):
        r = torch.tensor(rho, requires_grad=True)
        x, y = correlated_gaussians(m, dim, r, torch.Generator().manual_seed(seed))
        mi(*((warp(x), warp(y)) if warped else (x, y))).backward()
        grads.append(float(r.grad))  # type: ignore[arg-type]
    return sum(grads) / len(grads) / correlated_gaussian_mi_grad(dim, rho)


def correlated_gaussian_log_ratio(x: Tensor, y: Tensor, rho: float) -> Tensor:
    """The exact log density ratio log p(x, y) / (p(x) p(y)) of :func:`correlated_gaussians`.

    ``x``, ``y`` ``[..., d]`` (broadcastable, e.g. ``x[:, None]`` and ``y[None]`` for all pairs)
    -> ``[...]``, in their dtype. It is the optimal critic of the DV/InfoNCE/JS bounds (up to a
    constant), and its mean over joint pairs is I(x; y).
    """
    quad = (rho * rho * (x.pow(2) + y.pow(2)) - 2 * rho * x * y) / (2 * (1 - rho * rho))
    return (-0.5 * math.log1p(-rho * rho) - quad).sum(-1)


def correlated_gaussian_two_js(dim: int, rho: float, *, n: int = 200_000, seed: int = 99) -> float:
    """2·JS(p(x, y) || p(x)p(y)) of :func:`correlated_gaussians` in nats, by Monte Carlo.

    The value Deep InfoMax's JSD estimator targets (not MI): with the exact log density ratio r
    (:func:`correlated_gaussian_log_ratio`), E_P[log 2 − softplus(−r)] + E_Q[log 2 − softplus(r)]
    over ``n`` samples of each distribution (float64; Monte Carlo error ~1e-3 at n = 200 000).
    """
    generator = torch.Generator().manual_seed(seed)
    x, y = correlated_gaussians(n, dim, rho, generator, dtype=torch.float64)
    y_independent = torch.randn(n, dim, generator=generator, dtype=_F64)
    positive = (math.log(2) - functional.softplus(-correlated_gaussian_log_ratio(x, y, rho))).mean()
    negative = (math.log(2) - functional.softplus(correlated_gaussian_log_ratio(x, y_independent, rho))).mean()
    return float(positive + negative)


def correlated_gaussian_bound_target(name: str, dim: int, rho: float, batch: int, *, js_samples: int) -> float:
    """What a bound estimator ``name`` should report on :func:`correlated_gaussians`, in nats: InfoNCE
    is capped at log ``batch``, ``jsd`` targets 2·JS (:func:`correlated_gaussian_two_js` with
    ``js_samples`` samples, seed 1234), every other estimator I(x; y)."""
    if name == "infonce":
        return min(correlated_gaussian_mi(dim, rho), math.log(batch))
    if name == "jsd":
        return correlated_gaussian_two_js(dim, rho, n=js_samples, seed=1234)
    return correlated_gaussian_mi(dim, rho)


def train_mi_estimator(
    estimator: str | MIGradientEstimator,
    dim: int,
    rho: float,
    *,
    steps: int,
    batch: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    eval_batches: int = 8,
    **options: Any,
) -> tuple[MIGradientEstimator, float]:
    """Train an MI estimator's critic on :func:`correlated_gaussians` and return its estimate.

    ``steps`` Adam steps at learning rate ``lr`` maximise ``estimator(x, y)`` on fresh batches
    ``x``, ``y`` ``[batch, dim]``; then ``estimate`` is averaged over ``eval_batches`` further
    fresh batches of the same size (without gradient; bound values depend on the batch size).
    Compare with :func:`correlated_gaussian_mi` (or the estimator's own target).

    Args:
        estimator: a registered name (built with ``mireg.mi_gradient_estimator(estimator,
            **options)`` after seeding, so its initialisation follows ``seed``) or an instance
            (its initialisation is the caller's; ``options`` must then be empty).
        dim, rho: the problem, d and ρ.
        steps: training steps (>= 0); batch: pairs per batch (>= 2); lr: Adam learning rate.
        seed: seeds torch's global generator (critic initialisation) with ``seed`` and the
            sampling generator with ``seed + 1``: the same arguments give the same result on the
            same machine and thread count.
        eval_batches: batches averaged for the returned value (>= 1).
        options: estimator options, when ``estimator`` is a name.
    Returns:
        The trained estimator and the mean estimate in nats.
    Raises:
        ValueError: bad ``steps``/``batch``/``eval_batches``, options with an instance, or an
            estimator whose ``estimate`` returns ``None`` (gradient-only).
    """
    if steps < 0 or batch < 2 or eval_batches < 1:
        raise ValueError(f"need steps >= 0, batch >= 2 and eval_batches >= 1, got {steps}, {batch}, {eval_batches}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    if isinstance(estimator, str):
        mi = mireg.mi_gradient_estimator(estimator, **options)
    elif options:
        raise ValueError(f"options {sorted(options)} apply to an estimator name, not to an instance")
    else:
        mi = estimator
    optimizer = torch.optim.Adam(mi.parameters(), lr=lr)  # holds a lazy critic's parameters, materialised in place
    for _ in range(steps):
        x, y = correlated_gaussians(batch, dim, rho, generator)
        optimizer.zero_grad(set_to_none=True)
        (-mi(x, y)).backward()
        optimizer.step()
    total = 0.0
    with torch.no_grad():
        for _ in range(eval_batches):
            value = mi.estimate(*correlated_gaussians(batch, dim, rho, generator))
            if value is None:
                raise ValueError(
                    f"{type(mi).__name__} is gradient-only (estimate returns None): it has no value to return"
                )
            total += float(value)
    return mi, total / eval_batches


class FittedGaussianScore(ScoreEstimator):
    """Score of a Gaussian fitted to the batch, −Σ̂⁻¹(x − μ̂): the Gaussian-approximation baseline.

    Exact for Gaussian data and affine-equivariant; MIGE built on it is the gradient of the MI of
    the Gaussian approximation, so a score estimator worth using must beat it on non-Gaussian
    data. Not registered: pass an instance (``mireg.mi_gradient_estimator("mige", score=...)``).

    Options:
      ridge: added to the diagonal of the covariance Σ̂
    """

    name = "gauss"

    def __init__(self, *, ridge: float = 0.0) -> None:
        if ridge < 0:
            raise ValueError(f"ridge must be >= 0, got {ridge}")
        self.ridge = ridge

    def _score(self, samples: Tensor, at: Tensor | None) -> Tensor:
        """Fit on ``samples`` ``[M, d]``; the score at ``at`` ``[N, d]`` (default: the samples)."""
        points = samples if at is None else at
        mean = samples.mean(0)
        centred = samples - mean
        cov = centred.T @ centred / samples.shape[0]
        cov.diagonal().add_(self.ridge)
        return -torch.linalg.solve(cov, (points - mean).T).T
