"""The common frame of the kscore estimators: a kernel expansion fitted on the samples, evaluated anywhere.

Every estimator of Zhou, Shi & Zhu (2020) is ``ŝ = g_λ(L̂) ζ̂`` for a filter ``g_λ`` of the sample
operator ``L̂`` (see :mod:`mireg_kscore.matrix_kernels` for ``L̂`` and ``ζ̂``). By the representer
argument it is an :class:`Expansion`, ``ŝ(x) = weight · ζ̂(x) + Σ_j K(x, z_j) c_j`` over centres
``z_j`` (the samples, or a Nyström subset), and at the samples ``ŝ(X) = g_λ(K/M) ζ̂(X)`` with
``K`` the ``[M·d, M·d]`` Gram operator: the filter acts on the Gram operator's spectrum.
"""

from __future__ import annotations

from abc import abstractmethod

import attrs
from torch import Tensor

from mireg.estimators import ScoreEstimator
from mireg.kernels import pairwise_sq_dists, resolve_bandwidth, unit_spread
from mireg_kscore.matrix_kernels import KernelName, MatrixKernel, check_kernel


@attrs.frozen
class Expansion:
    """A fitted score: ``ŝ(x) = weight · ζ̂(x) + Σ_j K(x, z_j) c_j``.

    Attributes:
        at_samples: ``[..., M, d]`` the score at the samples (tracked by the fit, not re-evaluated).
        coefficients: ``[..., J, d]`` the ``c_j``.
        weight: the coefficient of ``ζ̂`` (``None`` when the estimate lies in the span of the centres).
        centres: ``[..., J, d]``; ``None`` means the samples themselves.
    """

    at_samples: Tensor
    coefficients: Tensor
    weight: float | None = None
    centres: Tensor | None = None


def check_lam_or_iterations(lam: float | None, iterations: int | None) -> None:
    """``lam`` in (0, 1] or ``iterations`` >= 1, not both."""
    if lam is not None and iterations is not None:
        raise ValueError(f"give either lam or iterations, not both (got lam={lam}, iterations={iterations})")
    if lam is not None and not 0 < lam <= 1:
        raise ValueError(f"lam must be in (0, 1] (units of the largest eigenvalue bound of L̂, which is 1), got {lam}")
    if iterations is not None and iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations}")


class KernelScoreEstimator(ScoreEstimator):
    """Base of the kscore estimators: kernel and bandwidth handling, evaluation of the :class:`Expansion`.

    Subclasses pass ``kernel``, ``bandwidth`` and ``bandwidth_multiplier`` (their own defaults) to
    ``__init__`` and implement :meth:`fit`.
    """

    batched = True

    def __init__(self, *, kernel: KernelName, bandwidth: float | None, bandwidth_multiplier: float) -> None:
        """Check and keep the options every kscore estimator has (``ValueError`` saying what is allowed)."""
        check_kernel(kernel)
        if bandwidth is not None and not bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0 or None (median heuristic), got {bandwidth}")
        if not bandwidth_multiplier > 0:
            raise ValueError(f"bandwidth_multiplier must be > 0, got {bandwidth_multiplier}")
        self.kernel: KernelName = kernel
        self.bandwidth = bandwidth
        self.bandwidth_multiplier = bandwidth_multiplier

    @abstractmethod
    def fit(self, gram: MatrixKernel, zeta: Tensor) -> Expansion:
        """Fit on the Gram operator of the samples and their Stein term ``ζ̂(X)`` ``[..., M, d]``."""

    def _score(self, samples: Tensor, at: Tensor | None) -> Tensor:
        """Fit on ``samples`` ``[..., M, d]``; return the score at ``at`` ``[..., N, d]`` (default:
        at the samples), shape ``[..., N, d]`` (``[..., M, d]``), in the input's dtype and device."""
        samples, at, unit = unit_spread(samples, at)  # exact rescaling: squares stay in the float range
        sq = pairwise_sq_dists(samples, samples)
        h = resolve_bandwidth(sq, self.bandwidth, self.bandwidth_multiplier)
        if self.bandwidth is not None:
            h = h / unit[..., 0, 0]  # a fixed bandwidth is in the units of the data
        gram = MatrixKernel(self.kernel, samples, samples, h, sq)
        fit = self.fit(gram, gram.stein_term())
        if at is None:
            return fit.at_samples / unit
        cross = MatrixKernel(self.kernel, at, samples, h)
        centres = cross if fit.centres is None else MatrixKernel(self.kernel, at, fit.centres, h)
        estimate = centres.apply(fit.coefficients)
        if fit.weight is not None:
            estimate = estimate + fit.weight * cross.stein_term()
        return estimate / unit
