"""InfoNCE (contrastive predictive coding) lower bound on MI with all in-batch negatives."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mireg.critic_options import SeparableCriticEstimator


class InfoNCE(SeparableCriticEstimator):
    """InfoNCE: contrastive lower bound on I(x; z), at most log B for a batch of B pairs.

    With critic scores ``T [B, B]`` (``T[i, j] = T(x_i, z_j)``), each x_i must pick its own z_i
    among the B candidates of the batch (the B-1 others are its negatives)::

        I_NCE = mean_i log softmax_j(T[i, :])[i] + log B  <=  log B

    It is a low-variance bound but saturates: on a batch of B pairs it can never exceed log B
    (log(K + 1) with ``negatives=K``), so it estimates min(I, ~log B). ``forward`` returns I_NCE
    of the batch (to MAXIMISE: ``(-mi(x, z)).backward()`` ascends the bound and trains the
    critic); ``estimate`` returns the same value in nats (0-dim tensor).
    """

    name = "infonce"
    references = ("van den Oord, Li & Vinyals, Representation Learning with Contrastive Predictive Coding, 2018",)

    def bound(self, joint: Tensor, negative: Tensor) -> Tensor:
        """I_NCE (0-dim, <= log(K + 1)) from ``joint`` ``[B]`` and ``negative`` ``[B, K]`` scores."""
        logits = torch.cat([joint.unsqueeze(1), negative], dim=1)  # [B, 1 + K], the true pair first
        return torch.log_softmax(logits, dim=1)[:, 0].mean() + math.log(logits.shape[1])
