"""The Jensen–Shannon MI estimator of Deep InfoMax (Hjelm et al. 2019)."""

from __future__ import annotations

import math

from torch import Tensor
from torch.nn import functional

from mireg.critic_options import SeparableCriticEstimator


class JSD(SeparableCriticEstimator):
    """JSD: Deep InfoMax's Jensen–Shannon estimator (2·JS divergence, NOT a bound on MI).

    With critic scores ``T [B, B]`` (``T[i, j] = T(x_i, z_j)``), joint pairs on the diagonal and
    the B(B-1) off-diagonal pairs as samples of Q = p(x)p(z), the f-GAN objective of DIM is::

        V = mean_i -softplus(-T[i, i]) - mean_{i≠j} softplus(T[i, j])   (<= 0)

    and its supremum over critics is 2·JS(P || Q) - 2 log 2. ``forward`` and ``estimate``
    return ``V + 2 log 2``, the value DIM's code reports (its positive minus negative
    expectations): an estimate of 2·JS(p(x, z) || p(x)p(z)) in nats, between 0 and 2 log 2
    ≈ 1.386 and monotone in the dependence, but not a bound on I(x; z). ``forward`` is to
    MAXIMISE: ``(-mi(x, z)).backward()`` trains the critic and pushes the encoder towards more
    dependence, with better-behaved gradients than the DV bound (DIM's argument). The optimal
    critic is the log density ratio log p(x, z) / (p(x) p(z)), so the mean of its diagonal
    approximates I(x; z) once trained.
    """

    name = "jsd"
    references = (
        "Hjelm et al., Learning deep representations by mutual information estimation and maximization, ICLR 2019",
        "Nowozin, Cseke & Tomioka, f-GAN, NeurIPS 2016",
    )

    def bound(self, joint: Tensor, negative: Tensor) -> Tensor:
        """DIM's JSD value (0-dim, in [0, 2 log 2]) from ``joint`` ``[B]`` and ``negative`` ``[B, K]`` scores."""
        return -functional.softplus(-joint).mean() - functional.softplus(negative).mean() + 2 * math.log(2)
