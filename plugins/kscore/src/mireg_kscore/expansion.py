"""The common frame of the kscore estimators: a kernel expansion fitted on the samples, evaluated anywhere.

Every estimator of Zhou, Shi & Zhu (2020) is ``ŝ = g_λ(L̂) ζ̂`` for a filter ``g_λ`` of the sample
operator ``L̂`` (see :mod:`mireg_kscore.matrix_kernels` for ``L̂`` and ``ζ̂``). By the representer
argument it is an :class:`Expansion`, ``ŝ(x) = weight · ζ̂(x) + Σ_j K(x, z_j) c_j`` over centres
``z_j`` (the samples, or a Nyström subset), and at the samples ``ŝ(X) = g_λ(K/M) ζ̂(X)`` with
``K`` the ``[M·d, M·d]`` Gram operator: the filter acts on the Gram operator's spectrum.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

import attrs
import torch
from torch import Tensor

from mireg.estimators import ScoreEstimator
from mireg.kernels import pairwise_sq_dists, resolve_bandwidth, unit_spread
from mireg_kscore.matrix_kernels import KernelName, MatrixKernel, check_kernel

BandwidthRule = Literal["median", "whitened"]
BANDWIDTH_RULES: tuple[BandwidthRule, ...] = ("median", "whitened")
#: The ``"whitened"`` rule's bandwidth in units of the batch's spread while the batch has many samples per dimension.
WHITENED_BANDWIDTH = 2.0
#: Its growth with the dimensions per sample: h = spread · max(WHITENED_BANDWIDTH, WHITENED_SLOPE · d / M).
WHITENED_SLOPE = 16.0
#: Rows of ``at`` evaluated at a time: the kernel fields of a block, ``[..., block, M]``, stay in cache whatever N.
EVALUATION_BLOCK = 512
#: The options MIGE builds ``kef`` and ``nu-method`` with for its whitened batches (their ``whitened_options``).
WHITENED_OPTIONS: Mapping[str, Any] = MappingProxyType(
    {"kernel": "curlfree-rbf", "lam": 1e-3, "bandwidth_rule": "whitened", "bandwidth_multiplier": 1.0}
)


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


def whitened_bandwidth(samples: Tensor) -> Tensor:
    """The ``"whitened"`` bandwidth rule: ``h = σ̄ · max(2, 16 d / M)`` for samples ``[..., M, d]``, shape ``[...]``.

    ``σ̄`` is the root-mean-square standard deviation of the coordinates (1 on MIGE's whitened or
    standardised batches), so the rule is scale-equivariant. A curl-free RBF kernel this local
    resolves the non-Gaussian part of the score that the median heuristic (which grows like
    ``sqrt(2d)`` on such batches) smooths away; with few samples per dimension it would leave
    every sample without neighbours, so the bandwidth grows in proportion to ``d / M`` there.
    The constants were chosen with MIGE on the warped and Gaussian toys of
    ``benchmarks/toy_gradient.py`` at batches 128 to 512, d ≤ 64 (``benchmarks/results/``).

    ``d`` and ``σ̄`` count only the coordinates that vary: a constant coordinate changes no distance,
    so appending zero columns (MIGE's stacked terms of different widths) leaves the rule unchanged.

    Raises:
        ValueError: when all samples of a set are identical (no spread to scale by).
    """
    m = samples.shape[-2]
    variance = (samples - samples.mean(-2, keepdim=True)).pow(2).mean(-2)  # [..., d]
    varying = (variance > 0).sum(-1).to(samples.dtype)  # [...]
    if bool((varying == 0).any()):
        raise ValueError(
            "the 'whitened' bandwidth rule needs samples with a spread, but all samples of a set are identical; "
            "pass distinct samples or a fixed bandwidth"
        )
    spread = (variance.sum(-1) / varying).sqrt()
    return spread * (WHITENED_SLOPE / m * varying).clamp_min(WHITENED_BANDWIDTH)


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

    Subclasses pass ``kernel``, ``bandwidth``, ``bandwidth_rule`` and ``bandwidth_multiplier`` (their
    own defaults) to ``__init__`` and implement :meth:`fit`. The bandwidth is ``bandwidth`` when
    given, else ``bandwidth_multiplier`` times the rule's: the median pairwise distance
    (``"median"``) or :func:`whitened_bandwidth` (``"whitened"``, for standardised or whitened
    batches; the rule of the estimators' ``whitened_options``, which MIGE uses).
    """

    batched = True

    def __init__(
        self,
        *,
        kernel: KernelName,
        bandwidth: float | None,
        bandwidth_rule: BandwidthRule,
        bandwidth_multiplier: float,
    ) -> None:
        """Check and keep the options every kscore estimator has (``ValueError`` saying what is allowed)."""
        check_kernel(kernel)
        if bandwidth is not None and not bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0 or None (a bandwidth rule), got {bandwidth}")
        if bandwidth_rule not in BANDWIDTH_RULES:
            raise ValueError(f"bandwidth_rule must be one of {BANDWIDTH_RULES}, got {bandwidth_rule!r}")
        if not bandwidth_multiplier > 0:
            raise ValueError(f"bandwidth_multiplier must be > 0, got {bandwidth_multiplier}")
        self.kernel: KernelName = kernel
        # A diagonal kernel's fields, Stein term and Gram matrix see zero coordinates nowhere (the whitened rule
        # counts only varying ones); a curl-free kernel's divergence counts every dimension.
        self.zero_padding_exact = not kernel.startswith("curlfree")
        self.bandwidth = bandwidth
        self.bandwidth_rule: BandwidthRule = bandwidth_rule
        self.bandwidth_multiplier = bandwidth_multiplier

    @abstractmethod
    def fit(self, gram: MatrixKernel, zeta: Tensor) -> Expansion:
        """Fit on the Gram operator of the samples and their Stein term ``ζ̂(X)`` ``[..., M, d]``."""

    def _score(self, samples: Tensor, at: Tensor | None) -> Tensor:
        """Fit on ``samples`` ``[..., M, d]``; return the score at ``at`` ``[..., N, d]`` (default:
        at the samples), shape ``[..., N, d]`` (``[..., M, d]``), in the input's dtype and device."""
        samples, at, unit = unit_spread(samples, at)  # exact rescaling: squares stay in the float range
        sq = pairwise_sq_dists(samples, samples)
        if self.bandwidth is None and self.bandwidth_rule == "whitened":
            h = self.bandwidth_multiplier * whitened_bandwidth(samples)
        else:
            h = resolve_bandwidth(sq, self.bandwidth, self.bandwidth_multiplier)
            if self.bandwidth is not None:
                h = h / unit[..., 0, 0]  # a fixed bandwidth is in the units of the data
        gram = MatrixKernel(self.kernel, samples, samples, h, sq)
        fit = self.fit(gram, gram.stein_term())
        if at is None:
            return fit.at_samples / unit
        return torch.cat([self._evaluate(fit, samples, rows, h) for rows in at.split(EVALUATION_BLOCK, -2)], -2) / unit

    def _evaluate(self, fit: Expansion, samples: Tensor, at: Tensor, h: Tensor) -> Tensor:
        """The fitted score at ``at`` ``[..., N, d]`` (samples ``[..., M, d]`` rescaled alike), ``[..., N, d]``."""
        centres = MatrixKernel(self.kernel, at, samples if fit.centres is None else fit.centres, h)
        estimate = centres.apply(fit.coefficients)
        if fit.weight is not None:  # the Stein term is over all samples: Nyström's [N, M] kernel only here
            cross = centres if fit.centres is None else MatrixKernel(self.kernel, at, samples, h)
            estimate = estimate + fit.weight * cross.stein_term()
        return estimate
