"""The Spectral Stein Gradient Estimator (Shi, Sun & Zhu, ICML 2018)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import torch
from torch import Tensor

from mireg.estimators import ScoreEstimator
from mireg.kernels import pairwise_sq_dists, rbf_kernel, unit_rbf
from mireg.options import Range, check_options

Eigensolver = Literal["eigh", "subspace"]

#: Threshold used when neither ``threshold`` nor ``n_eigen`` is given.
DEFAULT_THRESHOLD = 0.99
#: Eigenvalues at most this many machine epsilons of the largest are numerically zero (dropped).
FLOOR_EPS = 10
#: Below this many samples the full ``eigh`` is cheap (under a few ms): no subspace attempt.
MIN_SUBSPACE_M = 256
#: Landmarks of the sketch that sizes the first subspace block (at most M/4 of them).
SKETCH = 256
#: First block = SKETCH_FACTOR × the sketch's eigenpair count (the full count stays below twice the
#: sketch's on the benchmark distributions while that is below SKETCH/2).
SKETCH_FACTOR = 2
#: Extra columns of the subspace block beyond the eigenpairs kept.
OVERSAMPLE = 10
#: Power iterations of the subspace solver before the Nyström step (each one is one
#: ``[M, M] @ [M, k]`` product and one QR; the solver needs two products with none).
POWER_ITERATIONS = 0


def _nystrom_eigenpairs(kernel: Tensor, block: int, warm: Tensor | None) -> tuple[Tensor, Tensor]:
    """Leading eigenpairs of a PSD ``kernel`` ``[..., M, M]`` by a randomized Nyström approximation.

    The range ``Q`` of ``K Ω`` (after :data:`POWER_ITERATIONS` more products) gives the Nyström
    approximation ``K Q (Qᵀ K Q)⁻¹ Qᵀ K`` (Tropp et al. 2017, with their shift ν for stability),
    whose eigenpairs are better than the Rayleigh-Ritz pairs of the same subspace at no extra
    product with K. ``Ω`` ``[..., M, block]`` is Gaussian from a generator seeded with 0 on the
    kernel's device (deterministic, the global RNG untouched); its leading columns are replaced by
    ``warm`` ``[..., M, k]`` (k < block, eigenvectors from a smaller block) when given.

    Returns eigenvalues ``[..., block]`` (descending) and eigenvectors ``[..., M, block]``.
    """
    generator = torch.Generator(device=kernel.device).manual_seed(0)
    start = torch.randn((*kernel.shape[:-1], block), generator=generator, dtype=kernel.dtype, device=kernel.device)
    if warm is not None:
        start[..., : warm.shape[-1]] = warm
    basis = torch.linalg.qr(kernel @ start).Q
    for _ in range(POWER_ITERATIONS):
        basis = torch.linalg.qr(kernel @ basis).Q
    image = kernel @ basis
    shift = torch.finfo(kernel.dtype).eps * torch.linalg.matrix_norm(image)  # [...]
    image = image + shift[..., None, None] * basis
    core = basis.mT @ image
    core_evals, core_evecs = torch.linalg.eigh((core + core.mT) / 2)
    core_evals = torch.maximum(core_evals, (shift * torch.finfo(kernel.dtype).eps).unsqueeze(-1))
    factor = image @ (core_evecs * core_evals.rsqrt().unsqueeze(-2))  # K + ν ≈ factor factorᵀ
    orthonormal, triangle = torch.linalg.qr(factor)
    evals, small = torch.linalg.eigh(triangle @ triangle.mT)
    evals = (evals - shift.unsqueeze(-1)).clamp_min(0)
    return evals.flip(-1), (orthonormal @ small).flip(-1)


class SSGE(ScoreEstimator):
    """Spectral Stein gradient estimator: Nyström eigenfunctions of an RBF kernel + Stein's identity.

    The score is expanded in the J leading eigenfunctions of the kernel operator, estimated by
    Nyström from the eigenpairs (λ_j, u_j) of the Gram matrix K; Stein's identity gives the
    coefficients. With G = ⟨∇, K⟩ (the kernel gradient summed over samples, ``K X`` and the row
    sums of K, see :func:`mireg.kernels.rbf_grad_sum`) the estimate reduces to

        ŝ(x) = −k(x, X) U diag(1/(λ + η)²) Uᵀ G,   at the samples  −U diag(λ/(λ + η)²) Uᵀ G,

    so memory is O(M² + M d) and no ``[M, M, d]`` tensor is built. The ridge η shifts the
    eigenvalues (no matrix is formed for it). Eigenpairs with λ ≤ 10·eps·λ_max are numerically
    zero and always dropped. With ``n_eigen = M``, ``eta = 0`` and the ``"eigh"`` solver the
    estimate equals the Stein estimator with ``eta = 0`` (−K⁻¹ G at the samples).

    Defaults (``benchmarks/score_accuracy.py``; numbers in ``benchmarks/results/score_accuracy.md``):
    ``threshold = 0.99`` (the paper's) with ``eta = 0.1`` is the most uniform setting of the grid
    over N(0, I), an anisotropic Gaussian and a mixture; without the ridge the near-flat tail of
    the spectrum is kept at larger d, and a fixed ``n_eigen`` fails at small or large d. The
    ``"subspace"`` solver (a sketch-sized randomized Nyström step, see :meth:`_first_block`)
    matches ``"eigh"`` in accuracy and is much faster at large M; below M = 256 it is ``eigh``.

    Inputs are rescaled by an exact power of two (:func:`mireg.kernels.unit_spread`), so samples
    at any scale inside the float range give the same estimate, scaled.

    Options:
      threshold: keep eigenvalues while their cumulative share of trace(K) is below this (0.99 if n_eigen unset)
      n_eigen: keep this many leading eigenpairs, 1 <= n_eigen <= M (M: full spectrum); excludes threshold
      bandwidth: fixed RBF bandwidth h > 0 in k(x, y) = exp(-|x - y|^2 / (2 h^2)); None for the median heuristic
      bandwidth_multiplier: h = bandwidth_multiplier * median pairwise distance (ignored with a fixed bandwidth)
      eta: ridge added to the eigenvalues, >= 0
      eigensolver: "eigh" (full) or "subspace" (randomized top block; eigh when it would exceed M/4)
    """

    name = "ssge"
    batched = True
    zero_padding_exact = True  # an isotropic RBF kernel: zero coordinates change no distance
    #: Options MIGE uses on whitened batches unless given (measured: benchmarks/results/toy_gradient.md).
    whitened_options: ClassVar[dict[str, float]] = {"eta": 0.0, "threshold": 0.999, "bandwidth_multiplier": 2.0}
    references = ("Shi, Sun & Zhu, A Spectral Approach to Gradient Estimation for Implicit Distributions, ICML 2018",)

    def __init__(
        self,
        *,
        threshold: Annotated[float, Range(0, 1, low_open=True, high_open=True)] | None = None,
        n_eigen: Annotated[int, Range(1)] | None = None,
        bandwidth: Annotated[float, Range(0, low_open=True)] | None = None,
        bandwidth_multiplier: Annotated[float, Range(0, low_open=True)] = 1.0,
        eta: Annotated[float, Range(0)] = 0.1,
        eigensolver: Eigensolver = "subspace",
    ) -> None:
        check_options(SSGE, locals())
        if threshold is not None and n_eigen is not None:
            raise ValueError(
                f"give either threshold or n_eigen, not both (got threshold={threshold}, n_eigen={n_eigen})"
            )
        self.threshold = threshold
        self.n_eigen = n_eigen
        self.bandwidth = bandwidth
        self.bandwidth_multiplier = bandwidth_multiplier
        self.eta = eta
        self.eigensolver: Eigensolver = eigensolver

    @property
    def _threshold(self) -> float:
        return DEFAULT_THRESHOLD if self.threshold is None else self.threshold

    def _kept(self, evals: Tensor, trace: Tensor, m: int, cap: int) -> Tensor:
        """Mask ``[..., k]`` of the kept eigenpairs, from descending ``evals`` ``[..., k]`` of an
        ``[M, M]`` kernel with ``trace`` ``[...]``; at most ``cap`` are kept."""
        if self.n_eigen is not None:
            count = torch.full(evals.shape[:-1], min(self.n_eigen, cap), device=evals.device)
        else:
            share = evals.cumsum(-1) / trace.unsqueeze(-1)
            count = (share < self._threshold).sum(-1).clamp(1, cap)
        index = torch.arange(evals.shape[-1], device=evals.device)
        floor = evals[..., :1] * FLOOR_EPS * torch.finfo(evals.dtype).eps
        return (index < count.unsqueeze(-1)) & (evals > floor)

    def _may_use_subspace(self, m: int) -> bool:
        """Whether :meth:`_eigenpairs` may take the subspace path for an ``[M, M]`` kernel: the
        ``"subspace"`` solver, and M large enough (with ``n_eigen``, its block at most M/4)."""
        if self.eigensolver != "subspace":
            return False
        if self.n_eigen is not None:
            return 4 * (self.n_eigen + OVERSAMPLE) <= m
        return m >= MIN_SUBSPACE_M

    def _first_block(self, kernel: Tensor) -> int | None:
        """Columns of the first subspace block for ``kernel`` ``[..., M, M]``, or ``None`` when the
        full ``eigh`` runs instead (:meth:`_may_use_subspace` is false, or the spectrum is too flat for a
        top-J solver).

        With a threshold, the count J is estimated up front from the eigenvalues of the kernel
        between :data:`SKETCH` strided landmarks (one small ``eigvalsh``): the same cumulative-share
        rule on that sketch, times :data:`SKETCH_FACTOR`. A sketch that needs half its own
        eigenpairs means a flat spectrum (J well above M/4 in the measurements): use ``eigh``.
        """
        m = kernel.shape[-1]
        if not self._may_use_subspace(m):
            return None
        if self.n_eigen is not None:
            return self.n_eigen + OVERSAMPLE
        size = min(SKETCH, m // 4)
        landmarks = kernel[..., :: m // size, :: m // size][..., :size, :size]
        sketch = torch.linalg.eigvalsh(landmarks).flip(-1)
        share = sketch.cumsum(-1) / landmarks.diagonal(dim1=-2, dim2=-1).sum(-1, keepdim=True)
        count = int((share < self._threshold).sum(-1).max()) + 1
        if 2 * count >= size:
            return None
        return SKETCH_FACTOR * count + OVERSAMPLE

    def _eigenpairs(self, kernel: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Eigenvalues ``[..., k]``, eigenvectors ``[..., M, k]`` and kept mask ``[..., k]``.

        The subspace path runs while its block is at most M/4 columns (beyond that the full
        ``eigh`` is as fast); a block too small for the threshold grows, warm-started from the
        eigenvectors already found.
        """
        m = kernel.shape[-1]
        trace = kernel.diagonal(dim1=-2, dim2=-1).sum(-1)
        cap = m if self.n_eigen is not None else m - 1
        if self.n_eigen is not None and self.n_eigen > m:
            raise ValueError(f"n_eigen = {self.n_eigen} exceeds the number of samples M = {m}; use n_eigen <= M")
        block = self._first_block(kernel)
        warm = None
        while block is not None and 4 * block <= m:
            evals, evecs = _nystrom_eigenpairs(kernel, block, warm)
            usable = block - OVERSAMPLE
            keep = self._kept(evals, trace, m, min(cap, usable))
            if self.n_eigen is not None or bool((keep.sum(-1) < usable).all()):
                return evals, evecs, keep
            # The eigenvalues not found yet are at most the last one found: grow the block at
            # least to where the threshold can be reached, starting from the vectors found.
            deficit = self._threshold * trace - evals[..., :usable].sum(-1)
            more = int((deficit / evals[..., usable - 1].clamp_min(torch.finfo(evals.dtype).tiny)).max().ceil())
            warm = evecs[..., :usable]
            block = max(2 * block, usable + more + OVERSAMPLE)
        evals, evecs = torch.linalg.eigh(kernel)
        evals, evecs = evals.flip(-1), evecs.flip(-1)
        return evals, evecs, self._kept(evals, trace, m, cap)

    def _score(self, samples: Tensor, at: Tensor | None) -> Tensor:
        """Fit on ``samples`` ``[..., M, d]``; return the score at ``at`` ``[..., N, d]`` (default:
        at the samples), shape ``[..., N, d]`` (``[..., M, d]``), in the input's dtype and device."""
        if samples.ndim > 2 and self._may_use_subspace(samples.shape[-2]):
            # The subspace solver sizes its block on the whole stack and draws its start by its shape:
            # fitting one set at a time keeps every estimate equal to that of the set on its own.
            flat = samples.reshape(-1, *samples.shape[-2:])
            flat_at = None if at is None else at.reshape(-1, *at.shape[-2:])
            each = [self._score(s, None if flat_at is None else flat_at[i]) for i, s in enumerate(flat)]
            return torch.stack(each).reshape(*samples.shape[:-2], *each[0].shape)
        rbf = unit_rbf(samples, at, self.bandwidth, self.bandwidth_multiplier)
        evals, evecs, keep = self._eigenpairs(rbf.kernel)
        shifted = evals + self.eta
        coefficients = evecs.mT @ rbf.grad_sum  # [..., k, d]
        if rbf.at is None:
            weights = torch.where(keep, evals / shifted.pow(2), 0.0)
            return -((evecs * weights.unsqueeze(-2)) @ coefficients) / rbf.unit
        weights = torch.where(keep, shifted.pow(-2), 0.0)
        fitted = (evecs * weights.unsqueeze(-2)) @ coefficients  # [..., M, d] first: the [N, M] product is then N·M·d
        cross = rbf_kernel(pairwise_sq_dists(rbf.at, rbf.samples), rbf.bandwidth)
        return -(cross @ fitted) / rbf.unit
