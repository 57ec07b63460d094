"""The kscore family against the estimators it generalises (needs the kscore, ssge and stein plugins).

Spectral cut-off with the diagonal RBF kernel is SSGE without a ridge (the same eigenpairs of the
Gram matrix, in and out of sample); Tikhonov (KEF) with the diagonal RBF kernel is Stein's
estimator at the samples with η = M λ, and without a regulariser (λ → 0) both are −K⁻¹⟨∇, K⟩.
"""

from __future__ import annotations

import torch

from mireg.kernels import median_heuristic, pairwise_sq_dists, rbf_kernel
from mireg.testing import relative_rmse
from mireg_kscore import KEF, SpectralCutoff
from mireg_ssge import SSGE
from mireg_stein import Stein

M, D = 64, 10


def _samples() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(M, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    points = torch.randn(20, D, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return x, points


def test_spectral_cutoff_with_the_diagonal_rbf_kernel_is_ssge() -> None:
    x, points = _samples()
    sq = pairwise_sq_dists(x, x)
    evals = torch.linalg.eigvalsh(rbf_kernel(sq, median_heuristic(sq)) / M).flip(0)
    for kept in (5, 20, M):
        # a threshold between the kept-th and the next eigenvalue of K/M keeps exactly `kept` pairs
        lam = float(evals[kept - 1]) * (0.999 if kept == M else float((evals[kept] / evals[kept - 1]).sqrt()))
        cutoff = SpectralCutoff(lam=lam, kernel="diagonal-rbf", bandwidth_multiplier=1.0)
        ssge = SSGE(n_eigen=kept, eta=0.0, eigensolver="eigh")
        assert relative_rmse(cutoff.score(x), ssge.score(x)) < 1e-8
        assert relative_rmse(cutoff.score(x, at=points), ssge.score(x, at=points)) < 1e-8


def test_tikhonov_with_the_diagonal_rbf_kernel_is_stein_at_the_samples() -> None:
    x, points = _samples()
    for eta in (0.1, 1e-3):
        kef = KEF(lam=eta / M, kernel="diagonal-rbf", bandwidth_multiplier=1.0)
        stein = Stein(eta=eta, bandwidth_multiplier=1.0)
        assert relative_rmse(kef.score(x), stein.score(x)) < 1e-9
        # off the samples they differ: KEF adds ζ̂(x)/λ, Stein interpolates its in-sample values
        assert relative_rmse(kef.score(x, at=points), stein.score(x, at=points)) > 0.1
    unregularised = Stein(eta=0.0, bandwidth_multiplier=1.0).score(x)
    assert relative_rmse(KEF(lam=1e-12, kernel="diagonal-rbf", bandwidth_multiplier=1.0).score(x), unregularised) < 1e-6
