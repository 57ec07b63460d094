"""Each estimator at the samples is its spectral filter of the Gram operator: ŝ(X) = g_λ(K/M) ζ̂(X).

The filters are closed forms: Landweber ``(1 − (1 − σ)^t)/σ``; the ν-method ``(1 − r_t(σ))/σ`` with
the residual polynomial ``r_t(σ) = P_t^(2ν−1/2, −1/2)(1 − 2σ) / P_t^(2ν−1/2, −1/2)(1)`` (Jacobi;
Engl, Hanke & Neubauer, Regularization of Inverse Problems, §6.3); Tikhonov ``1/(σ + λ)``; spectral
cut-off ``1/σ`` on ``σ ≥ λ``. K/M and ζ̂ come from the (autograd-checked) kernel module, the
filter from ``eigh`` in float64. Out of sample, each expansion evaluated at the samples
reproduces the in-sample estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from mireg.estimators import ScoreEstimator
from mireg.kernels import median_heuristic, pairwise_sq_dists
from mireg_kscore import KEF, Landweber, NuMethod, SpectralCutoff
from mireg_kscore.matrix_kernels import KernelName, MatrixKernel

M, D = 30, 3


def _jacobi(n: int, alpha: float, beta: float, t: Tensor) -> Tensor:
    """The Jacobi polynomial P_n^(α, β)(t) by its standard three-term recurrence."""
    previous, current = torch.ones_like(t), (alpha + 1) + (alpha + beta + 2) * (t - 1) / 2
    if n == 0:
        return previous
    for k in range(2, n + 1):
        c = 2 * k + alpha + beta
        previous, current = current, (
            (c - 1) * (c * (c - 2) * t + alpha**2 - beta**2) * current
            - 2 * (k + alpha - 1) * (k + beta - 1) * c * previous
        ) / (2 * k * (k + alpha + beta) * (c - 2))
    return current


def _nu_filter(t: int, nu: float) -> Callable[[Tensor], Tensor]:
    alpha = 2 * nu - 0.5
    at_one = math.gamma(t + alpha + 1) / (math.gamma(alpha + 1) * math.factorial(t))
    return lambda s: (1 - _jacobi(t, alpha, -0.5, 1 - 2 * s) / at_one) / s


CASES: dict[str, tuple[Callable[[KernelName], ScoreEstimator], Callable[[Tensor], Tensor]]] = {
    "landweber": (
        lambda k: Landweber(iterations=25, kernel=k, bandwidth_multiplier=1.0),
        lambda s: (1 - (1 - s) ** 25) / s,
    ),
    "nu-method nu=1": (lambda k: NuMethod(iterations=12, kernel=k, bandwidth_multiplier=1.0), _nu_filter(12, 1.0)),
    "nu-method nu=0.5": (
        lambda k: NuMethod(iterations=7, nu=0.5, kernel=k, bandwidth_multiplier=1.0),
        _nu_filter(7, 0.5),
    ),
    "kef": (
        lambda k: KEF(lam=0.01, kernel=k, cg_tol=1e-13, cg_iterations=500, bandwidth_multiplier=1.0),
        lambda s: 1 / (s + 0.01),
    ),
    "spectral-cutoff": (
        lambda k: SpectralCutoff(lam=0.01, kernel=k, bandwidth_multiplier=1.0),
        lambda s: torch.where(s >= 0.01, 1 / s, 0.0),
    ),
}


def _problem(kernel: KernelName) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Samples ``[M, d]``, eigenpairs of K/M and ζ̂(X) flattened to ``[M·d]``, with the median distance
    as bandwidth (the estimators above use ``bandwidth_multiplier=1.0``)."""
    x = torch.randn(M, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sq = pairwise_sq_dists(x, x)
    gram = MatrixKernel(kernel, x, x, median_heuristic(sq), sq)
    evals, evecs = torch.linalg.eigh(gram.dense() / M)
    return x, evals, evecs, gram.stein_term().flatten()


@pytest.mark.parametrize("kernel", ["diagonal-imq", "curlfree-rbf"])
@pytest.mark.parametrize("case", list(CASES))
def test_estimate_at_the_samples_is_the_filter(case: str, kernel: KernelName) -> None:
    build, filter_ = CASES[case]
    x, evals, evecs, zeta = _problem(kernel)
    expected = (evecs @ (filter_(evals) * (evecs.T @ zeta))).reshape(M, D)
    estimate = build(kernel).score(x)
    assert torch.allclose(estimate, expected, rtol=0, atol=1e-9 * float(expected.abs().max()))


@pytest.mark.parametrize("kernel", ["diagonal-rbf", "curlfree-imq"])
@pytest.mark.parametrize(
    "build",
    [
        lambda k: NuMethod(iterations=9, kernel=k),
        lambda k: Landweber(iterations=9, kernel=k),
        lambda k: KEF(lam=0.05, cg_tol=1e-13, cg_iterations=500, kernel=k),
        lambda k: KEF(lam=0.05, subsample=12, cg_tol=1e-13, cg_iterations=500, kernel=k),
        lambda k: SpectralCutoff(lam=0.01, kernel=k),
    ],
    ids=["nu-method", "landweber", "kef", "kef-nystrom", "spectral-cutoff"],
)
def test_the_expansion_at_the_samples_reproduces_the_in_sample_estimate(
    build: Callable[[KernelName], ScoreEstimator], kernel: KernelName
) -> None:
    estimator = build(kernel)
    x = torch.randn(M, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    inside = estimator.score(x)
    assert torch.allclose(estimator.score(x, at=x), inside, rtol=0, atol=1e-10 * float(inside.abs().max()))


@pytest.mark.parametrize("kernel", ["diagonal-imq", "curlfree-imq"])
def test_nystrom_with_every_sample_as_centre_is_the_exact_estimator(kernel: KernelName) -> None:
    # With Z = X: s(X) = K (K²/M + λK)⁻¹ ζ̂ = (K/M + λ)⁻¹ ζ̂ when K is invertible (float64, M = 30).
    x = torch.randn(M, D, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    options = {"lam": 0.05, "kernel": kernel, "cg_tol": 1e-13, "cg_iterations": 2000, "bandwidth_multiplier": 1.0}
    exact = KEF(**options).score(x)  # type: ignore[arg-type]
    nystrom = KEF(subsample=M, **options).score(x)  # type: ignore[arg-type]
    assert torch.allclose(nystrom, exact, rtol=0, atol=1e-7 * float(exact.abs().max()))
