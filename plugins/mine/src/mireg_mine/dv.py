"""MINE: the Donsker–Varadhan lower bound with the bias-corrected gradient of Belghazi et al. 2018."""

from __future__ import annotations

import torch
from torch import Tensor

from mireg.critics import Activation, CriticEstimator, CriticKind, log_mean_exp


class MINE(CriticEstimator):
    """MINE: Donsker–Varadhan bound on I(x; z) with a moving-average bias-corrected gradient.

    The bound on a batch, with critic scores ``T [B, B]`` (``T[i, j] = T(x_i, z_j)``), joint
    samples on the diagonal and the B(B-1) off-diagonal pairs as samples of p(x)p(z)::

        I_DV = mean_i T[i, i] - log mean_{i≠j} exp(T[i, j])

    Its plain gradient is biased on minibatches (the log of a minibatch mean); following
    Belghazi et al. (2018, §3.2) the denominator of ∇ log E_Q[e^T] = E_Q[∇T e^T] / E_Q[e^T] is
    replaced by an exponential moving average ``ema`` of the batch means of e^T, kept in log
    space in the buffer ``log_ema`` (so it is in ``state_dict``). ``forward`` returns the batch
    value of I_DV (to MAXIMISE: ``(-mi(x, z)).backward()`` ascends the bound and trains the critic)
    whose gradient is the bias-corrected one; it updates the average in training mode when
    gradients are enabled, first with the batch value itself. ``estimate`` returns I_DV of the
    batch in nats (0-dim tensor, differentiable; no average involved, nothing updated).

    Defaults were measured on correlated Gaussians (``benchmarks/mi_bounds.py``, batch 128, 2000
    Adam steps at lr 1e-3): a one-hidden-layer concat critic of width 128 reaches ~14 of 16.6 nats
    at d = 20, ρ = 0.9, where separable critics (f(x)ᵀg(z), 2×256, embed 32/64) stay at 3-5 nats
    and diverge for ELU or larger learning rates. With one hidden ReLU layer the concat critic
    scores all B(B-1) pairs block by block (``mireg.critics._ReluPairScores``): ~3.5 s per 1000
    steps on one CPU thread, so ``negatives=32`` (13.4 instead of 15.1 nats there, 3-7 s) saves nothing.

    Options:
      ema_rate: weight of the newest batch in the moving average of E_Q[e^T] (the paper's alpha)
      critic: "concat" (MLP on [x, z], default) or "separable" (f(x)ᵀg(z), one matmul for all pairs)
      hidden: width of the critic's hidden layers
      layers: number of hidden layers of the critic's MLPs
      embed_dim: output width of f and g (separable critic only)
      activation: hidden activation: relu, elu, gelu, silu, tanh or leaky_relu
      x_dim: flattened width of x, to build the critic eagerly (None: inferred at the first call)
      z_dim: flattened width of z, to build the critic eagerly (None: inferred at the first call)
      negatives: negative pairs per row, (x_i, z_(i+s) mod B) for s = 1..K; None: all B - 1 (default)
    """

    log_ema: Tensor
    ema_steps: Tensor

    name = "mine"
    references = ("Belghazi et al., Mutual Information Neural Estimation, ICML 2018",)

    def __init__(
        self,
        *,
        ema_rate: float = 0.01,
        critic: CriticKind = "concat",
        hidden: int = 128,
        layers: int = 1,
        embed_dim: int = 32,
        activation: Activation = "relu",
        x_dim: int | None = None,
        z_dim: int | None = None,
        negatives: int | None = None,
    ) -> None:
        if not 0.0 < ema_rate <= 1.0:
            raise ValueError(f"ema_rate must be in (0, 1] (1 = no averaging), got {ema_rate}")
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
        self.ema_rate = ema_rate
        #: log of the moving average of the batch means of exp(T) over product-of-marginals pairs.
        self.register_buffer("log_ema", torch.zeros(()))
        #: number of batches averaged so far (0: the average is not started).
        self.register_buffer("ema_steps", torch.zeros((), dtype=torch.long))

    def _update_ema(self, log_mean: Tensor) -> None:
        value = log_mean.detach().to(self.log_ema.dtype)
        if int(self.ema_steps) == 0:
            self.log_ema.copy_(value)
        else:
            rate = torch.tensor(self.ema_rate, dtype=value.dtype, device=value.device)
            self.log_ema.copy_(torch.logaddexp(torch.log1p(-rate) + self.log_ema, torch.log(rate) + value))
        self.ema_steps += 1

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """I_DV of the batch (0-dim, to maximise) with the bias-corrected gradient; ``x`` ``[B, dx]``,
        ``z`` ``[B, dz]``. Differentiable w.r.t. ``x``, ``z`` and the critic."""
        positive, negative = self.scores(x, z)
        joint = positive.mean()
        log_mean = log_mean_exp(negative)
        if self.training and torch.is_grad_enabled():
            self._update_ema(log_mean)
        if int(self.ema_steps) == 0:
            return joint - log_mean
        # ∇ log mean e^T = (mean e^T ∇T) / mean e^T; divide by the moving average instead.
        weight = torch.exp(log_mean.detach() - self.log_ema.to(log_mean.dtype))
        surrogate = joint - weight * log_mean
        return (joint - log_mean).detach() + surrogate - surrogate.detach()

    def bound(self, joint: Tensor, negative: Tensor) -> Tensor:
        """I_DV (0-dim, nats) from ``joint`` ``[B]`` and ``negative`` ``[B, K]`` scores; no average involved."""
        return joint.mean() - log_mean_exp(negative)
