"""MINE-f: the f-divergence (Nguyen–Wainwright–Jordan) lower bound on MI."""

from __future__ import annotations

import torch
from torch import Tensor

from mireg.critics import Activation, CriticEstimator, CriticKind, log_mean_exp


class MINEf(CriticEstimator):
    """MINE-f (NWJ): f-divergence lower bound on I(x; z), unbiased on minibatches.

    With critic scores ``T [B, B]`` (``T[i, j] = T(x_i, z_j)``), joint samples on the diagonal
    and the B(B-1) off-diagonal pairs as samples of p(x)p(z)::

        I_NWJ = mean_i T[i, i] - e^{-1} mean_{i≠j} exp(T[i, j])

    The optimal critic is 1 + log p(x, z) / (p(x) p(z)). ``forward`` returns I_NWJ of the batch
    (to MAXIMISE: ``(-mi(x, z)).backward()`` ascends the bound and trains the critic); its
    gradient needs no correction. ``estimate`` returns the same value in nats (0-dim tensor).
    Lower variance of the gradient than MINE is not to be expected: exp(T) is not normalised, and
    at large MI a too large learning rate overflows exp(T) (NaN). Critic defaults as for ``mine``
    (measured in ``benchmarks/mi_bounds.py``); Adam lr 1e-3 or lower.

    Options:
      critic: "concat" (MLP on [x, z], default) or "separable" (f(x)ᵀg(z), one matmul for all pairs)
      hidden: width of the critic's hidden layers
      layers: number of hidden layers of the critic's MLPs
      embed_dim: output width of f and g (separable critic only)
      activation: hidden activation: relu, elu, gelu, silu, tanh or leaky_relu
      x_dim: flattened width of x, to build the critic eagerly (None: inferred at the first call)
      z_dim: flattened width of z, to build the critic eagerly (None: inferred at the first call)
      negatives: negative pairs per row, (x_i, z_(i+s) mod B) for s = 1..K; None: all B - 1 (default)
    """

    name = "mine-f"
    aliases = ("nwj",)
    references = (
        "Nguyen, Wainwright & Jordan, Estimating divergence functionals and the likelihood ratio "
        "by convex risk minimization, IEEE Trans. Inf. Theory 2010",
        "Belghazi et al., Mutual Information Neural Estimation, ICML 2018",
    )

    def __init__(
        self,
        *,
        critic: CriticKind = "concat",
        hidden: int = 128,
        layers: int = 1,
        embed_dim: int = 32,
        activation: Activation = "relu",
        x_dim: int | None = None,
        z_dim: int | None = None,
        negatives: int | None = None,
    ) -> None:
        super().__init__(
            critic=critic,
            hidden=hidden,
            layers=layers,
            embed_dim=embed_dim,
            activation=activation,
            x_dim=x_dim,
            z_dim=z_dim,
            negatives=negatives,
        )

    def bound(self, joint: Tensor, negative: Tensor) -> Tensor:
        """I_NWJ (0-dim, nats) from ``joint`` ``[B]`` and ``negative`` ``[B, K]`` scores."""
        return joint.mean() - torch.exp(log_mean_exp(negative) - 1.0)
