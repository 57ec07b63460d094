"""Correlated-Gaussian problems with a closed-form MI, and a small training loop for critics."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional

import mireg


def sample(d: int, rho: float, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x, ε ~ N(0, I_d), z = ρ x + sqrt(1 - ρ²) ε; both ``[batch, d]``."""
    x = torch.randn(batch, d, generator=generator)
    return x, rho * x + math.sqrt(1 - rho**2) * torch.randn(batch, d, generator=generator)


def true_mi(d: int, rho: float) -> float:
    return -0.5 * d * math.log(1 - rho**2)


def _log_ratio(x: torch.Tensor, z: torch.Tensor, rho: float) -> torch.Tensor:
    """Exact log p(x, z) / (p(x) p(z)) of the correlated Gaussian, summed over the last dimension."""
    quad = (rho**2 * (x**2 + z**2) - 2 * rho * x * z) / (2 * (1 - rho**2))
    return (-0.5 * math.log(1 - rho**2) - quad).sum(-1)


def optimal_infonce(d: int, rho: float, batch: int = 128, batches: int = 100) -> float:
    """E[I_NCE] at batch size ``batch`` under the optimal critic (the exact log density ratio), by
    Monte Carlo: what a perfectly trained InfoNCE returns, below min(I, log B) (MC error ~0.01)."""
    generator = torch.Generator().manual_seed(98)
    values = []
    for _ in range(batches):
        x, z = sample(d, rho, batch, generator)
        scores = _log_ratio(x.unsqueeze(1), z.unsqueeze(0), rho)  # [B, B]
        values.append(float(torch.log_softmax(scores, dim=1).diagonal().mean()) + math.log(batch))
    return sum(values) / len(values)


def true_two_jsd(d: int, rho: float, n: int = 200_000) -> float:
    """2·JS(p(x, z) || p(x)p(z)), the value DIM's JSD estimator targets, by Monte Carlo with the exact
    log density ratio r: E_P[log 2 - softplus(-r)] + E_Q[log 2 - softplus(r)] (MC error ~1e-3)."""
    generator = torch.Generator().manual_seed(99)
    x, z = sample(d, rho, n, generator)
    z_independent = torch.randn(n, d, generator=generator)
    positive = (math.log(2) - functional.softplus(-_log_ratio(x, z, rho))).mean()
    negative = (math.log(2) - functional.softplus(_log_ratio(x, z_independent, rho))).mean()
    return float(positive + negative)


def train(
    name: str,
    d: int,
    rho: float,
    *,
    steps: int,
    batch: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    eval_batches: int = 8,
    **options: object,
) -> tuple[mireg.MIGradientEstimator, float]:
    """Train a fresh estimator's critic with Adam on fresh batches; return it and the mean of
    ``estimate`` over ``eval_batches`` fresh batches of the training size (no gradient)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    mi = mireg.mi_gradient_estimator(name, **options)
    optimizer = torch.optim.Adam(mi.parameters(), lr=lr)  # before the first call: lazy critic
    for _ in range(steps):
        x, z = sample(d, rho, batch, generator)
        optimizer.zero_grad(set_to_none=True)
        (-mi(x, z)).backward()
        optimizer.step()
    with torch.no_grad():
        values = [float(mi.estimate(*sample(d, rho, batch, generator))) for _ in range(eval_batches)]
    return mi, sum(values) / len(values)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Bit-for-bit reproducible and fair on a shared machine."""
    torch.set_num_threads(1)
