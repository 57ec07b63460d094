"""The Stein gradient estimator (Li & Turner, ICLR 2018)."""

from __future__ import annotations

import warnings
from typing import Annotated

import torch
from torch import Tensor

from mireg.estimators import ScoreEstimator
from mireg.kernels import pairwise_sq_dists, rbf_kernel, unit_rbf
from mireg.linalg import cholesky_ex
from mireg.options import Range, check_options

#: Smallest ridge that keeps the float32 Cholesky factorisation reliable (measured up to M = 2048).
FLOAT32_MIN_ETA = 1e-3


class Stein(ScoreEstimator):
    """Stein gradient estimator: ĝ = −(K + ηI)⁻¹ ⟨∇, K⟩ at the samples, by a Cholesky solve.

    K is the RBF Gram matrix of the samples and ⟨∇, K⟩ the kernel gradient summed over samples
    (``K X`` and the row sums of K, see :func:`mireg.kernels.rbf_grad_sum`); memory is
    O(M² + M d). Out of sample (``at`` given), the in-sample estimates are interpolated with the
    kernel, ŝ(x) = k(x, X) (K + ηI)⁻¹ ĝ = −k(x, X) (K + ηI)⁻² ⟨∇, K⟩: the Nyström extension of the
    untruncated spectral estimator, i.e. SSGE with ``n_eigen = M`` and the same ``eta``. (With
    η > 0 it does not reproduce ĝ exactly at the samples themselves.)

    In float32, η < 1e-3 makes the factorisation unreliable (the smallest eigenvalues of the RBF
    Gram matrix fall below float32 resolution) and warns; a factorisation that fails raises
    a ``ValueError`` asking for a larger ``eta`` or float64.

    Defaults (``benchmarks/score_accuracy.py``; numbers in ``benchmarks/results/score_accuracy.md``):
    ``eta = 0.1`` with ``bandwidth_multiplier = 2`` has the lowest mean error of the grid and is
    best on N(0, I), the whitened MIGE case; smaller ridges overfit, larger ones oversmooth.
    Inputs are rescaled by an exact power of two (:func:`mireg.kernels.unit_spread`).

    Options:
      eta: ridge η > 0 added to the diagonal of K (>= 1e-3 in float32)
      bandwidth: fixed RBF bandwidth h > 0 in k(x, y) = exp(-|x - y|^2 / (2 h^2)); None for the median heuristic
      bandwidth_multiplier: h = bandwidth_multiplier * median pairwise distance (ignored with a fixed bandwidth)
    """

    name = "stein"
    batched = True
    zero_padding_exact = True  # an isotropic RBF kernel: zero coordinates change no distance
    references = ("Li & Turner, Gradient Estimators for Implicit Models, ICLR 2018",)

    def __init__(
        self,
        *,
        eta: Annotated[float, Range(0)] = 0.1,
        bandwidth: Annotated[float, Range(0, low_open=True)] | None = None,
        bandwidth_multiplier: Annotated[float, Range(0, low_open=True)] = 2.0,
    ) -> None:
        check_options(Stein, locals())
        self.eta = eta
        self.bandwidth = bandwidth
        self.bandwidth_multiplier = bandwidth_multiplier

    def _score(self, samples: Tensor, at: Tensor | None) -> Tensor:
        """Fit on ``samples`` ``[..., M, d]``; return the score at ``at`` ``[..., N, d]`` (default:
        at the samples), shape ``[..., N, d]`` (``[..., M, d]``), in the input's dtype and device."""
        if samples.dtype == torch.float32 and self.eta < FLOAT32_MIN_ETA:
            warnings.warn(
                f"Stein with eta = {self.eta} in float32 is numerically unsafe (the Cholesky solve "
                f"loses all accuracy or fails); use eta >= {FLOAT32_MIN_ETA} or float64 samples",
                RuntimeWarning,
                stacklevel=3,
            )
        rbf = unit_rbf(samples, at, self.bandwidth, self.bandwidth_multiplier)
        kernel, grad = rbf.kernel, rbf.grad_sum
        kernel.diagonal(dim1=-2, dim2=-1).add_(self.eta)
        factor, info = cholesky_ex(kernel)
        if bool((info > 0).any()):
            raise ValueError(
                f"K + eta*I is not numerically positive definite (eta = {self.eta}, {samples.dtype}, "
                f"M = {samples.shape[-2]}); use a larger eta (e.g. 1e-2) or float64 samples"
            )
        estimate = -torch.cholesky_solve(grad, factor)
        if samples.dtype == torch.float32:  # one step of iterative refinement: the float32 factor is inexact
            estimate = estimate - torch.cholesky_solve(grad + kernel @ estimate, factor)
        if rbf.at is None:
            return estimate / rbf.unit
        cross = rbf_kernel(pairwise_sq_dists(rbf.at, rbf.samples), rbf.bandwidth)
        return cross @ torch.cholesky_solve(estimate, factor) / rbf.unit
