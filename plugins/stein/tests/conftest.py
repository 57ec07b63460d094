"""Distributions with closed-form scores for the Stein tests."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def sample_with_score(kind: str, m: int, d: int, dtype: torch.dtype, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``(x [m, d], ∇ log q(x) [m, d])`` in ``dtype`` for ``kind``:

    * ``"gaussian"``: N(μ, Σ), Σ with eigenvalues log-spaced in [0.25, 4] in a random basis;
    * ``"mixture"``: 0.3 N(u, I) + 0.7 N(-u, I) with |u| = 1.5.
    """
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    if kind == "gaussian":
        basis, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=f64))
        variances = torch.logspace(math.log10(0.25), math.log10(4.0), d, dtype=f64)
        mean = torch.randn(d, generator=g, dtype=f64)
        x = mean + (torch.randn(m, d, generator=g, dtype=f64) * variances.sqrt()) @ basis.T
        score = -((x - mean) @ basis / variances) @ basis.T
    elif kind == "mixture":
        u = torch.randn(d, generator=g, dtype=f64)
        u = 1.5 * u / u.norm()
        first = torch.rand(m, generator=g, dtype=f64) < 0.3
        x = torch.randn(m, d, generator=g, dtype=f64) + torch.where(first[:, None], u, -u)
        r = torch.sigmoid(math.log(0.3 / 0.7) - 0.5 * ((x - u) ** 2).sum(1) + 0.5 * ((x + u) ** 2).sum(1))[:, None]
        score = -(x - u) * r - (x + u) * (1 - r)
    else:
        raise ValueError(f"unknown distribution {kind!r}")
    return x.to(dtype), score.to(dtype)


def relative_rmse(estimate: Tensor, truth: Tensor) -> float:
    """``sqrt(mean |ŝ - s|²) / sqrt(mean |s|²)`` over the rows of ``[N, d]`` tensors."""
    error = (estimate.double() - truth.double()).pow(2).sum(-1).mean()
    return float((error / truth.double().pow(2).sum(-1).mean()).sqrt())
