"""Correlated-Gaussian problems with a closed-form MI, and a small training loop for critics."""

from __future__ import annotations

import math

import pytest
import torch

import mireg


def sample(d: int, rho: float, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x, ε ~ N(0, I_d), z = ρ x + sqrt(1 - ρ²) ε; both ``[batch, d]``."""
    x = torch.randn(batch, d, generator=generator)
    return x, rho * x + math.sqrt(1 - rho**2) * torch.randn(batch, d, generator=generator)


def true_mi(d: int, rho: float) -> float:
    return -0.5 * d * math.log(1 - rho**2)


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
