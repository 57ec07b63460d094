"""SMILE: the clipped Donsker–Varadhan estimate of a critic trained with the Jensen–Shannon objective."""

from __future__ import annotations

from typing import Annotated, Any

from torch import Tensor
from torch.nn import functional

from mireg.critic_options import ConcatCriticEstimator
from mireg.critics import log_mean_exp
from mireg.options import Range, check_options


class SMILE(ConcatCriticEstimator):
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
      critic_options: the critic options of :class:`~mireg.critic_options.ConcatCriticEstimator`
    """

    name = "smile"
    references = (
        "Song & Ermon, Understanding the Limitations of Variational Mutual Information Estimators, ICLR 2020",
    )

    def __init__(self, *, tau: Annotated[float, Range(0, low_open=True)] | None = 5.0, **critic_options: Any) -> None:
        check_options(SMILE, locals())  # tau None: no clipping
        super().__init__(**critic_options)
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
