"""MINE-f: the f-divergence (Nguyen–Wainwright–Jordan) lower bound on MI."""

from __future__ import annotations

import torch
from torch import Tensor

from mireg.critic_options import ConcatCriticEstimator
from mireg.critics import log_mean_exp


class MINEf(ConcatCriticEstimator):
    """MINE-f (NWJ): f-divergence lower bound on I(x; z), unbiased on minibatches.

    With critic scores ``T [B, B]`` (``T[i, j] = T(x_i, z_j)``), joint samples on the diagonal
    and the B(B-1) off-diagonal pairs as samples of p(x)p(z)::

        I_NWJ = mean_i T[i, i] - e^{-1} mean_{i≠j} exp(T[i, j])

    The optimal critic is 1 + log p(x, z) / (p(x) p(z)). ``forward`` returns I_NWJ of the batch
    (to MAXIMISE: ``(-mi(x, z)).backward()`` ascends the bound and trains the critic); its
    gradient needs no correction. ``estimate`` returns the same value in nats (0-dim tensor).
    Lower variance of the gradient than MINE is not to be expected: exp(T) is not normalised, and
    at large MI a too large learning rate overflows exp(T) (NaN). Critic defaults as for ``mine``
    (measured: ``benchmarks/results/mi_bounds.md``); Adam lr 1e-3 or lower.
    """

    name = "mine-f"
    aliases = ("nwj",)
    references = (
        "Nguyen, Wainwright & Jordan, Estimating divergence functionals and the likelihood ratio "
        "by convex risk minimization, IEEE Trans. Inf. Theory 2010",
        "Belghazi et al., Mutual Information Neural Estimation, ICML 2018",
    )

    def bound(self, joint: Tensor, negative: Tensor) -> Tensor:
        """I_NWJ (0-dim, nats) from ``joint`` ``[B]`` and ``negative`` ``[B, K]`` scores."""
        return joint.mean() - torch.exp(log_mean_exp(negative) - 1.0)
