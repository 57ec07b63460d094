"""Distributions with closed-form scores for the ssm tests: anisotropic Gaussian, two-component mixture."""

from __future__ import annotations

import math

import torch
from mireg_ssm import SlicedScoreMatching
from torch import Tensor


class Gaussian:
    """N(μ, Σ) in d dimensions, Σ = Q diag(λ) Qᵀ with λ log-spaced over [0.3, 3] (condition number 10)."""

    def __init__(self, dim: int, dtype: torch.dtype = torch.float64, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
        eigenvalues = torch.logspace(math.log10(0.3), math.log10(3.0), dim, dtype=torch.float64)
        self.mean = (0.5 * torch.randn(dim, generator=g, dtype=torch.float64)).to(dtype)
        self.scale = (q * eigenvalues.sqrt()).to(dtype)  # Σ = scale scaleᵀ
        self.precision = (q @ torch.diag(1 / eigenvalues) @ q.T).to(dtype)
        self.dtype = dtype

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``[n, d]`` samples."""
        eps = torch.randn(n, self.mean.shape[0], generator=generator, dtype=torch.float64).to(self.dtype)
        return self.mean + eps @ self.scale.T

    def score(self, x: Tensor) -> Tensor:
        """∇ log p at ``x`` ``[n, d]`` -> ``[n, d]``."""
        return -(x - self.mean) @ self.precision


class Mixture:
    """½ N(−a u, I) + ½ N(a u, I) with a = 1.5 and u a unit vector: bimodal along u."""

    def __init__(self, dim: int, dtype: torch.dtype = torch.float64, seed: int = 0, separation: float = 1.5) -> None:
        g = torch.Generator().manual_seed(seed)
        u = torch.randn(dim, generator=g, dtype=torch.float64)
        self.means = (separation * torch.stack([-u, u]) / u.norm()).to(dtype)  # [2, d]
        self.dtype = dtype

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``[n, d]`` samples."""
        component = torch.randint(0, 2, (n,), generator=generator)
        eps = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64).to(self.dtype)
        return self.means[component] + eps

    def score(self, x: Tensor) -> Tensor:
        """∇ log p at ``x`` ``[n, d]`` -> ``[n, d]``: −(x − Σ_k r_k(x) μ_k), r the responsibilities."""
        logits = -0.5 * (x[:, None, :] - self.means).pow(2).sum(-1)  # [n, 2]
        return -(x - torch.softmax(logits, dim=1) @ self.means)


def relative_rmse(estimate: Tensor, truth: Tensor) -> float:
    """sqrt(mean ‖ŝ − s‖²) / sqrt(mean ‖s‖²) over rows of ``[n, d]`` tensors."""
    return float((estimate - truth).pow(2).sum(-1).mean().sqrt() / truth.pow(2).sum(-1).mean().sqrt())


def train_and_measure(
    estimator: SlicedScoreMatching, dist: Gaussian | Mixture, *, m: int, calls: int, n_test: int = 2000, seed: int = 1
) -> float:
    """MIGE's use: ``calls`` score() calls on fresh ``[m, d]`` batches; relative RMSE at fresh points."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(calls):
        estimator.score(dist.sample(m, g))
    test = dist.sample(n_test, g)
    estimator_n_steps, estimator.n_steps = estimator.n_steps, 0
    try:
        estimate = estimator.score(dist.sample(m, g), at=test)
    finally:
        estimator.n_steps = estimator_n_steps
    return relative_rmse(estimate, dist.score(test))
