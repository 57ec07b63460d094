"""Iterative regularisation: Landweber iteration and the ν-method (accelerated Landweber).

Both iterate on ``L̂ s = ζ̂`` from ``s = 0`` with one application of the Gram operator per step
and track ``s = a ζ̂ + K(·, X) c`` and its values at the samples ``v = s(X)``: the residual
``ζ̂ − L̂ s`` is ``ζ̂ − (1/M) K(·, X) v``. Memory: the kernel fields, ``O(M²)`` floats per sample
set (at most ``O(M² d)`` for any kernel), plus a few ``[M, d]`` iterates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor

from mireg_kscore.expansion import (
    WHITENED_OPTIONS,
    BandwidthRule,
    Expansion,
    KernelScoreEstimator,
    check_lam_or_iterations,
)
from mireg_kscore.matrix_kernels import KernelName, MatrixKernel

#: Regularisation when neither lam nor iterations is given (Landweber: 16 iterations; ν-method: 16): few enough
#: iterations that a call at M = 512, d = 64 stays within twice one ``eigh`` of 512×512 (see the classes).
DEFAULT_LANDWEBER_LAM = 0.0625
DEFAULT_NU_LAM = 4e-3

class Landweber(KernelScoreEstimator):
    """Landweber iteration ``s ← s + (ζ̂ − L̂ s)``: the filter ``g_t(σ) = (1 − (1 − σ)^t) / σ``.

    The step is 1 because every kernel here is normalised so that ‖L̂‖ ≤ 1. ``t`` iterations
    regularise like Tikhonov with λ ≈ 1/t, so ``lam`` gives ``t = ceil(1/lam)`` iterations, each
    but the first (from ``s = 0``) one application of the Gram operator (O(M² d) time, O(M²)
    memory). It needs the square of the ν-method's iterations for the same λ; it is here as the
    baseline the ν-method accelerates. The default ``lam`` keeps a call at M = 512, d = 64 within
    twice one ``eigh`` of 512×512, with a margin for the timing's spread: it regularises more than the
    accuracy on the problems of ``benchmarks/score_accuracy.py`` would ask for, and for the same
    cost the ν-method is the more accurate (``benchmarks/results/``). The bandwidth multiplier was
    chosen on those problems at M = 512.

    Options:
      lam: regularisation in (0, 1]; the iteration count is ceil(1/lam) (default 0.0625 when iterations is unset)
      iterations: number of iterations t >= 1; excludes lam
      kernel: "curlfree-imq", "curlfree-rbf", "diagonal-imq" or "diagonal-rbf" (normalised so K(x, x) = I)
      bandwidth: fixed bandwidth h > 0; None for bandwidth_rule
      bandwidth_rule: "median" (median pairwise distance) or "whitened" (spread · max(2, 16 d / M): whitened batches)
      bandwidth_multiplier: h = bandwidth_multiplier * the rule's bandwidth (ignored with a fixed bandwidth)
    """

    name = "landweber"
    references = (
        "Zhou, Shi & Zhu, Nonparametric Score Estimators, ICML 2020",
        "Engl, Hanke & Neubauer, Regularization of Inverse Problems, 1996",
    )

    def __init__(
        self,
        *,
        lam: float | None = None,
        iterations: int | None = None,
        kernel: KernelName = "curlfree-imq",
        bandwidth: float | None = None,
        bandwidth_rule: BandwidthRule = "median",
        bandwidth_multiplier: float = 2.0,
    ) -> None:
        check_lam_or_iterations(lam, iterations)
        super().__init__(
            kernel=kernel, bandwidth=bandwidth, bandwidth_rule=bandwidth_rule, bandwidth_multiplier=bandwidth_multiplier
        )
        self.lam = lam
        self.iterations = iterations

    @property
    def steps(self) -> int:
        """The number of iterations: ``iterations``, else ``ceil(1/lam)``."""
        if self.iterations is not None:
            return self.iterations
        return math.ceil(1 / (DEFAULT_LANDWEBER_LAM if self.lam is None else self.lam))

    def fit(self, gram: MatrixKernel, zeta: Tensor) -> Expansion:
        m = zeta.shape[-2]
        values, coefficients = zeta, zeta.new_zeros(zeta.shape)  # s_1 = ζ̂: the first step from s = 0 applies nothing
        for _ in range(self.steps - 1):
            coefficients.sub_(values, alpha=1 / m)
            values = (values + zeta).sub_(gram.apply(values), alpha=1 / m)
        return Expansion(values, coefficients, weight=float(self.steps))


class NuMethod(KernelScoreEstimator):
    """The ν-method (Brakhage; Engl, Hanke & Neubauer §6.3): Landweber accelerated by a three-term recursion.

    ``s_k = s_{k−1} + μ_k (s_{k−1} − s_{k−2}) + ω_k (ζ̂ − L̂ s_{k−1})`` with the ν-method's
    coefficients; ``t`` iterations regularise like λ ≈ 1/t², so ``lam`` gives
    ``t = ceil(1/sqrt(lam))`` iterations, ``t − 1`` applications of the Gram operator (O(M² d) time
    each, O(M²) memory). Needs ‖L̂‖ ≤ 1, which the kernel normalisation guarantees. The method and
    kernel are the defaults of Zhou, Shi & Zhu; ``lam`` and the bandwidth multiplier were chosen on
    the problems of ``benchmarks/score_accuracy.py`` at M = 512, ``lam`` among those whose
    iterations keep a call at M = 512, d = 64 within twice one ``eigh`` of 512×512 (about as
    accurate on average as smaller ones there). Inside MIGE (whitened batches) it is built with
    :attr:`whitened_options`: ``curlfree-rbf``, ``lam = 1e-3`` and the ``"whitened"`` bandwidth
    rule (:func:`~mireg_kscore.expansion.whitened_bandwidth`), measured with ``benchmarks/toy_gradient.py``.

    Options:
      lam: regularisation in (0, 1]; the iteration count is ceil(1/sqrt(lam)) (default 4e-3 when iterations is unset)
      iterations: number of iterations t >= 1; excludes lam
      nu: the ν > 0 of the method (qualification ν)
      kernel: "curlfree-imq", "curlfree-rbf", "diagonal-imq" or "diagonal-rbf" (normalised so K(x, x) = I)
      bandwidth: fixed bandwidth h > 0; None for bandwidth_rule
      bandwidth_rule: "median" (median pairwise distance) or "whitened" (spread · max(2, 16 d / M): whitened batches)
      bandwidth_multiplier: h = bandwidth_multiplier * the rule's bandwidth (ignored with a fixed bandwidth)
    """

    name = "nu-method"
    references = Landweber.references
    whitened_options: ClassVar[Mapping[str, Any]] = WHITENED_OPTIONS

    def __init__(
        self,
        *,
        lam: float | None = None,
        iterations: int | None = None,
        nu: float = 1.0,
        kernel: KernelName = "curlfree-imq",
        bandwidth: float | None = None,
        bandwidth_rule: BandwidthRule = "median",
        bandwidth_multiplier: float = 3.0,
    ) -> None:
        check_lam_or_iterations(lam, iterations)
        super().__init__(
            kernel=kernel, bandwidth=bandwidth, bandwidth_rule=bandwidth_rule, bandwidth_multiplier=bandwidth_multiplier
        )
        if not nu > 0:
            raise ValueError(f"nu must be > 0, got {nu}")
        self.lam = lam
        self.iterations = iterations
        self.nu = nu

    @property
    def steps(self) -> int:
        """The number of iterations: ``iterations``, else ``ceil(1/sqrt(lam))``."""
        if self.iterations is not None:
            return self.iterations
        return math.ceil(1 / math.sqrt(DEFAULT_NU_LAM if self.lam is None else self.lam))

    def fit(self, gram: MatrixKernel, zeta: Tensor) -> Expansion:
        m, nu = zeta.shape[-2], self.nu
        omega = (4 * nu + 2) / (4 * nu + 1)
        weight, values, coefficients = omega, omega * zeta, zeta.new_zeros(zeta.shape)  # s_1 = ω_1 ζ̂
        last_weight, last_values, last_coefficients = 0.0, zeta.new_zeros(zeta.shape), zeta.new_zeros(zeta.shape)
        for k in range(2, self.steps + 1):
            mu = (k - 1) * (2 * k - 3) * (2 * k + 2 * nu - 1) / (
                (k + 2 * nu - 1) * (2 * k + 4 * nu - 1) * (2 * k + 2 * nu - 3)
            )
            omega = 4 * (2 * k + 2 * nu - 1) * (k + nu - 1) / ((k + 2 * nu - 1) * (2 * k + 4 * nu - 1))
            # s_{k−1} + μ (s_{k−1} − s_{k−2}) = lerp(s_{k−2}, s_{k−1}, 1 + μ): one pass. The coefficients reuse
            # s_{k−2}'s buffer; the values do not (the application saves them for autograd).
            step = gram.apply(values)
            last_weight, weight = weight, weight + mu * (weight - last_weight) + omega
            last_coefficients, coefficients = coefficients, last_coefficients.lerp_(coefficients, 1 + mu)
            coefficients.sub_(values, alpha=omega / m)
            last_values, values = values, last_values.lerp(values, 1 + mu)
            values.add_(zeta, alpha=omega).sub_(step, alpha=omega / m)
        return Expansion(values, coefficients, weight=weight)
