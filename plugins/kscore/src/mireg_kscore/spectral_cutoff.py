"""Spectral cut-off regularisation: the score projected on the leading eigenfunctions (SSGE's family)."""

from __future__ import annotations

import torch
from torch import Tensor

from mireg_kscore.expansion import BandwidthRule, Expansion, KernelScoreEstimator
from mireg_kscore.matrix_kernels import KernelName, MatrixKernel

#: Largest M·d for which a curl-free Gram matrix [M·d, M·d] is built and diagonalised.
DENSE_LIMIT = 4096


class SpectralCutoff(KernelScoreEstimator):
    """Spectral cut-off: ``g_λ(σ) = 1/σ`` for eigenvalues ``σ ≥ λ`` of ``L̂``, 0 below.

    With the eigenpairs ``(μ_j, u_j)`` of ``K/M`` (K the Gram matrix), ``ŝ(X) = Σ_{μ_j ≥ λ} u_j u_jᵀ
    ζ̂(X) / μ_j`` and ``ŝ(x) = K(x, X) c`` with ``c = Σ_{μ_j ≥ λ} u_j u_jᵀ ζ̂(X) / (M μ_j²)`` (the
    Nyström extension). The leading eigenpair is always kept. With the diagonal RBF kernel this is
    SSGE with ``eta = 0`` and the same eigenpairs. A diagonal kernel needs one ``eigh`` of
    ``[M, M]``; a curl-free kernel needs its ``[M·d, M·d]`` matrix (O(M² d²) memory, one ``eigh``
    of that size), built only while ``M·d <= DENSE_LIMIT`` (4096): beyond, use a diagonal kernel
    or an iterative estimator (``nu-method``), which apply the operator instead. The defaults were
    chosen on the problems of ``benchmarks/score_accuracy.py`` at M = 512.

    Options:
      lam: keep the eigenpairs of L̂ with eigenvalue >= lam, in (0, 1]
      kernel: "curlfree-imq", "curlfree-rbf", "diagonal-imq" or "diagonal-rbf" (normalised so K(x, x) = I)
      bandwidth: fixed bandwidth h > 0; None for bandwidth_rule
      bandwidth_rule: "median" (median pairwise distance) or "whitened" (spread · max(2, 16 d / M): whitened batches)
      bandwidth_multiplier: h = bandwidth_multiplier * the rule's bandwidth (ignored with a fixed bandwidth)
    """

    name = "spectral-cutoff"
    references = (
        "Zhou, Shi & Zhu, Nonparametric Score Estimators, ICML 2020",
        "Shi, Sun & Zhu, A Spectral Approach to Gradient Estimation for Implicit Distributions, ICML 2018",
    )

    def __init__(
        self,
        *,
        lam: float = 1e-4,
        kernel: KernelName = "diagonal-rbf",
        bandwidth: float | None = None,
        bandwidth_rule: BandwidthRule = "median",
        bandwidth_multiplier: float = 3.0,
    ) -> None:
        super().__init__(
            kernel=kernel, bandwidth=bandwidth, bandwidth_rule=bandwidth_rule, bandwidth_multiplier=bandwidth_multiplier
        )
        if not 0 < lam <= 1:
            raise ValueError(f"lam must be in (0, 1] (an eigenvalue threshold of L̂, of norm at most 1), got {lam}")
        self.lam = lam

    def fit(self, gram: MatrixKernel, zeta: Tensor) -> Expansion:
        *batch, m, d = zeta.shape
        if gram.curl_free:
            if m * d > DENSE_LIMIT:
                raise ValueError(
                    f"spectral cut-off with the curl-free kernel {self.kernel!r} diagonalises an [M·d, M·d] "
                    f"matrix, here M·d = {m * d} > {DENSE_LIMIT}; use a diagonal kernel or the nu-method"
                )
            matrix, rhs = gram.dense() / m, zeta.reshape(*batch, m * d, 1)
        else:
            matrix, rhs = gram.a / m, zeta
        evals, evecs = torch.linalg.eigh(matrix)
        index = torch.arange(evals.shape[-1], device=evals.device)
        keep = (evals >= self.lam) | (index == evals.shape[-1] - 1)
        inverse = torch.where(keep, evals.clamp_min(torch.finfo(evals.dtype).tiny).reciprocal(), 0.0)
        projected = evecs.mT @ rhs
        values = evecs @ (inverse.unsqueeze(-1) * projected)
        coefficients = evecs @ (inverse.pow(2).unsqueeze(-1) * projected) / m
        return Expansion(values.reshape(zeta.shape), coefficients.reshape(zeta.shape))
