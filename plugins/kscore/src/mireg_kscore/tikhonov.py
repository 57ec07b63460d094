"""Tikhonov regularisation: the kernel exponential family estimator (KEF), exact or Nyström."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from mireg.linalg import cholesky_ex
from mireg_kscore.conjugate_gradient import conjugate_gradient
from mireg_kscore.expansion import WHITENED_OPTIONS, BandwidthRule, Expansion, KernelScoreEstimator
from mireg_kscore.matrix_kernels import KernelName, MatrixKernel

Solver = Literal["auto", "cholesky", "cg"]


class KEF(KernelScoreEstimator):
    """Tikhonov-regularised score, ``ŝ = (L̂ + λ)⁻¹ ζ̂``: the kernel exponential family estimator.

    Exact (Sriperumbudur et al. 2017): ``ŝ(x) = (ζ̂(x) − K(x, X) w / M) / λ`` with
    ``(K/M + λ) w = ζ̂(X)``, so ``ŝ(X) = w``. With a diagonal kernel ``w`` comes from one Cholesky
    factorisation of the ``[M, M]`` scalar Gram matrix (O(M²) memory); a curl-free kernel's Gram
    operator is ``[M·d, M·d]`` and is solved by conjugate gradients, one operator application
    (O(M² d) time, O(M²) memory) per iteration. At the samples the estimate is Stein's
    ``−(K + ηI)⁻¹ ⟨∇, K⟩`` with ``η = M λ`` (diagonal kernels; they differ off the samples).

    Nyström (``subsample = N``, Sutherland et al. 2018): ``ŝ = K(·, Z) c`` over N centres Z drawn
    without replacement from the samples (a generator seeded with 0: deterministic), with
    ``(K_ZX K_XZ / M + λ K_ZZ) c = ζ̂(Z)``; O(M N) memory, Cholesky of ``[N, N]`` for diagonal
    kernels and conjugate gradients on ``[N·d]`` blocks for curl-free ones.

    The defaults were chosen on the problems of ``benchmarks/score_accuracy.py`` at M = 512. Inside
    MIGE (whitened batches), whose default score estimator it is, builds it with
    :attr:`whitened_options`: ``diagonal-rbf``, ``lam = 1e-3`` and the ``"whitened"`` bandwidth rule
    (:func:`~mireg_kscore.expansion.whitened_bandwidth`), measured with ``benchmarks/toy_gradient.py``:
    at the samples that is Stein's estimator with η = Mλ at a local bandwidth, one Cholesky per fit.

    Options:
      lam: Tikhonov regularisation λ in (0, 1] (units of the bound 1 on the eigenvalues of L̂)
      solver: "auto" (Cholesky for diagonal kernels, conjugate gradients for curl-free ones), "cholesky" or "cg"
      cg_tol: conjugate gradients stop at a residual of cg_tol times the right-hand side (Frobenius norms)
      cg_iterations: most conjugate-gradient iterations
      subsample: number of Nyström centres N, 1 <= N <= M; None for the exact estimator
      kernel: "curlfree-imq", "curlfree-rbf", "diagonal-imq" or "diagonal-rbf" (normalised so K(x, x) = I)
      bandwidth: fixed bandwidth h > 0; None for bandwidth_rule
      bandwidth_rule: "median" (median pairwise distance) or "whitened" (spread · max(2, 16 d / M): whitened batches)
      bandwidth_multiplier: h = bandwidth_multiplier * the rule's bandwidth (ignored with a fixed bandwidth)
    """

    name = "kef"
    references = (
        "Zhou, Shi & Zhu, Nonparametric Score Estimators, ICML 2020",
        "Sriperumbudur et al., Density Estimation in Infinite Dimensional Exponential Families, JMLR 2017",
        "Sutherland et al., Efficient and principled score estimation with Nyström kernel exponential families, "
        "AISTATS 2018",
    )
    #: The shared whitened options with the diagonal RBF kernel: one Cholesky of ``[M, M]`` instead of
    #: conjugate gradients on ``[M·d, M·d]``, and inside MIGE nearly as accurate as the curl-free kernel
    #: at a fraction of its cost (MIGE's default score estimator; measured with benchmarks/toy_gradient.py).
    whitened_options: ClassVar[Mapping[str, Any]] = MappingProxyType({**WHITENED_OPTIONS, "kernel": "diagonal-rbf"})

    def __init__(
        self,
        *,
        lam: float = 3e-3,
        solver: Solver = "auto",
        cg_tol: float = 1e-4,
        cg_iterations: int = 100,
        subsample: int | None = None,
        kernel: KernelName = "curlfree-imq",
        bandwidth: float | None = None,
        bandwidth_rule: BandwidthRule = "median",
        bandwidth_multiplier: float = 3.0,
    ) -> None:
        super().__init__(
            kernel=kernel, bandwidth=bandwidth, bandwidth_rule=bandwidth_rule, bandwidth_multiplier=bandwidth_multiplier
        )
        if not 0 < lam <= 1:
            raise ValueError(f"lam must be in (0, 1] (units of the bound 1 on the eigenvalues of L̂), got {lam}")
        if solver not in ("auto", "cholesky", "cg"):
            raise ValueError(f"solver must be 'auto', 'cholesky' or 'cg', got {solver!r}")
        if solver == "cholesky" and kernel.startswith("curlfree"):
            raise ValueError(
                f"solver='cholesky' needs a diagonal kernel: the Gram matrix of {kernel!r} is [M·d, M·d] "
                "and is applied as an operator; use solver='cg' (or 'auto')"
            )
        if not 0 < cg_tol < 1:
            raise ValueError(f"cg_tol must be in (0, 1), got {cg_tol}")
        if cg_iterations < 1:
            raise ValueError(f"cg_iterations must be a positive integer, got {cg_iterations}")
        if subsample is not None and subsample < 1:
            raise ValueError(f"subsample must be a positive integer (Nyström centres) or None, got {subsample}")
        self.lam = lam
        self.solver: Solver = solver
        self.cg_tol = cg_tol
        self.cg_iterations = cg_iterations
        self.subsample = subsample

    @property
    def _cholesky(self) -> bool:
        return self.solver == "cholesky" or (self.solver == "auto" and not self.kernel.startswith("curlfree"))

    def _solve(self, matrix: Tensor, rhs: Tensor) -> Tensor:
        """``matrix⁻¹ rhs`` for a symmetric positive-definite ``[..., N, N]`` matrix, by Cholesky."""
        factor, info = cholesky_ex(matrix)
        if bool((info > 0).any()):
            raise ValueError(
                f"the KEF system is not numerically positive definite (lam = {self.lam}, {matrix.dtype}, "
                f"N = {matrix.shape[-1]}); use a larger lam or float64 samples"
            )
        return torch.cholesky_solve(rhs, factor)

    def fit(self, gram: MatrixKernel, zeta: Tensor) -> Expansion:
        m = zeta.shape[-2]
        if self.subsample is not None:
            return self._fit_nystrom(gram, zeta)
        if self._cholesky:
            matrix = gram.a / m
            matrix.diagonal(dim1=-2, dim2=-1).add_(self.lam)
            solution = self._solve(matrix, zeta)
        else:
            solution = conjugate_gradient(
                lambda v: gram.apply(v) / m + self.lam * v, zeta, tol=self.cg_tol, max_iterations=self.cg_iterations
            )
        return Expansion(solution, -solution / (m * self.lam), weight=1 / self.lam)

    def _fit_nystrom(self, gram: MatrixKernel, zeta: Tensor) -> Expansion:
        m = zeta.shape[-2]
        n = self.subsample
        assert n is not None
        if n > m:
            raise ValueError(f"subsample = {n} exceeds the number of samples M = {m}; use subsample <= M")
        generator = torch.Generator(device=zeta.device).manual_seed(0)
        index = torch.randperm(m, generator=generator, device=zeta.device)[:n].sort().values
        samples = gram.x + gram.origin
        centres = samples.index_select(-2, index)
        cross = MatrixKernel(self.kernel, samples, centres, gram.h)  # K(X, Z)
        inner = MatrixKernel(self.kernel, centres, centres, gram.h)  # K(Z, Z)
        rhs = zeta.index_select(-2, index)  # ζ̂(Z): the Stein term over all M samples, at the centres
        if self._cholesky:
            matrix = cross.a.mT @ cross.a / m + self.lam * inner.a
            matrix.diagonal(dim1=-2, dim2=-1).add_(torch.finfo(matrix.dtype).eps * n)
            coefficients = self._solve(matrix, rhs)
        else:
            coefficients = conjugate_gradient(
                lambda c: cross.apply_adjoint(cross.apply(c)) / m + self.lam * inner.apply(c),
                rhs,
                tol=self.cg_tol,
                max_iterations=self.cg_iterations,
            )
        return Expansion(cross.apply(coefficients), coefficients, centres=centres)
