"""MINE: the Donsker–Varadhan lower bound with the bias-corrected gradient of Belghazi et al. 2018."""

from __future__ import annotations

from typing import Annotated, Any

import torch
from torch import Tensor

from mireg.critic_options import ConcatCriticEstimator
from mireg.critics import log_mean_exp
from mireg.options import Range, check_options


class MINE(ConcatCriticEstimator):
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

    The critic defaults (one hidden ReLU layer of width 128 on [x, z], all B - 1 negatives) are
    the best of those measured on correlated Gaussians: see ``benchmarks/results/mi_bounds.md``.

    Options:
      ema_rate: weight of the newest batch in the moving average of E_Q[e^T] (the paper's alpha)
      critic_options: the critic options of :class:`~mireg.critic_options.ConcatCriticEstimator`
    """

    log_ema: Tensor
    ema_steps: Tensor

    name = "mine"
    references = ("Belghazi et al., Mutual Information Neural Estimation, ICML 2018",)

    def __init__(self, *, ema_rate: Annotated[float, Range(0, 1, low_open=True)] = 0.01, **critic_options: Any) -> None:
        check_options(MINE, locals())  # ema_rate = 1: no averaging
        super().__init__(**critic_options)
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
