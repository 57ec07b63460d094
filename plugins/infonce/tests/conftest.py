"""InfoNCE's target on the correlated-Gaussian toy, and one thread (the problems and training loop are in
mireg.testing)."""

from __future__ import annotations

import math

import pytest
import torch

from mireg.testing import correlated_gaussian_log_ratio, correlated_gaussians


def optimal_infonce(d: int, rho: float, batch: int = 128, batches: int = 100) -> float:
    """E[I_NCE] at batch size ``batch`` under the optimal critic (the exact log density ratio), by
    Monte Carlo: what a perfectly trained InfoNCE returns, below min(I, log B) (MC error ~0.01)."""
    generator = torch.Generator().manual_seed(98)
    values = []
    for _ in range(batches):
        x, z = correlated_gaussians(batch, d, rho, generator)
        scores = correlated_gaussian_log_ratio(x.unsqueeze(1), z.unsqueeze(0), rho)  # [B, B]
        values.append(float(torch.log_softmax(scores, dim=1).diagonal().mean()) + math.log(batch))
    return sum(values) / len(values)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Bit-for-bit reproducible and fair on a shared machine."""
    torch.set_num_threads(1)
