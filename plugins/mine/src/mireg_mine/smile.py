"""SMILE: the clipped Donsker–Varadhan estimate of a critic trained with the Jensen–Shannon objective."""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional

from mireg.critics import Activation, CriticEstimator, CriticKind, log_mean_exp


class SMILE(CriticEstimator):
    """SMILE: clipped Donsker–Varadhan value of a critic trained by the Jensen–Shannon objective.

    With critic scores ``T [B, B]`` (``T[i, j] = T(x_i, z_j)``), joint pairs on the diagonal and the
    B(B-1) off-diagonal pairs as samples of p(x)p(z) (Song & Ermon 2020)::

        I_SMILE = mean_i T[i, i] - log mean_{i≠j} clip(exp(T[i, j]), e^-τ, e^τ)
        J_JS    = mean_i -softplus(-T[i, i]) - mean_{i≠j} softplus(T[i, j])

    The JS objective trains the critic with low variance, and its optimum is the log density
    ratio log p(x, z) / (p(x) p(z)), whose DV value is I(x; z). Clipping e^T to [e^-τ, e^τ] bounds the
    variance of the partition-function term (it makes the value a biased estimate, not a bound;
    τ → ∞ recovers DV). ``forward`` returns the value I_SMILE with the gradient of J_JS (as the
    authors' code does), so ``(-mi(x, z)).backward()`` trains the critic by the JS objective;
    ``estimate`` returns I_SMILE in nats (0-dim tensor). Critic defaults as for ``mine``; on a finite
    data set ``mireg.estimate_mi`` trains it at lr 3e-3 (measured in ``benchmarks/finite_data.py``).

    Options:
      tau: clip exp(T) of the negative pairs to [e^-tau, e^tau]; None: no clipping (the DV value)
      critic: "concat" (MLP on [x, z], default) or "separable" (f(x)ᵀg(z), one matmul for all pairs)
      hidden: width of the critic's hidden layers
      layers: number of hidden layers of the critic's MLPs
      embed_dim: output width of f and g (separable critic only)
      activation: hidden activation: relu, elu, gelu, silu, tanh or leaky_relu
      x_dim: flattened width of x, to build the critic eagerly (None: inferred at the first call)
      z_dim: flattened width of z, to build the critic eagerly (None: inferred at the first call)
      negatives: negative pairs per row, (x_i, z_(i+s) mod B) for s = 1..K; None: all B - 1 (default)
    """

    name = "smile"
    references = (
        "Song & Ermon, Understanding the Limitations of Variational Mutual Information Estimators, ICLR 2020",
    )

    def __init__(
        self,
        *,
        tau: float | None = 5.0,
        critic: CriticKind = "concat",
        hidden: int = 128,
        layers: int = 1,
        embed_dim: int = 32,
        activation: Activation = "relu",
        x_dim: int | None = None,
        z_dim: int | None = None,
        negatives: int | None = None,
    ) -> None:
        if tau is not None and not tau > 0:
            raise ValueError(f"tau must be > 0 (clip exp(T) to [e^-tau, e^tau]) or None (no clipping), got {tau}")
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
        self.tau = tau

    def bound(self, joint: Tensor, negative: Tensor) -> Tensor:
        """I_SMILE (0-dim, nats) from ``joint`` ``[B]`` and ``negative`` ``[B, K]`` scores."""
        clipped = negative if self.tau is None else negative.clamp(-self.tau, self.tau)
        return joint.mean() - log_mean_exp(clipped)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """I_SMILE of the batch (0-dim) with the gradient of the JS objective; ``x`` ``[B, dx]``, ``z`` ``[B, dz]``."""
        joint, negative = self.scores(x, z)
        js = -functional.softplus(-joint).mean() - functional.softplus(negative).mean()
        return self.bound(joint, negative).detach() + js - js.detach()
