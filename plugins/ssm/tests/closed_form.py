"""Closed-form distributions for the ssm tests, from :mod:`mireg.testing`, and the MIGE-style protocol."""

from __future__ import annotations

import functools

import torch

from mireg.testing import ClosedFormDistribution, relative_rmse
from mireg.testing import Gaussian as _Gaussian
from mireg.testing import GaussianMixture as _GaussianMixture
from mireg_ssm import SlicedScoreMatching

#: N(μ, Σ), λ(Σ) log-spaced over [0.3, 3] (condition number 10), μ ~ 0.5 N(0, I); takes (dim, dtype=, seed=).
Gaussian = functools.partial(_Gaussian, variance_range=(0.3, 3.0), mean_scale=0.5)
#: ½ N(−a u, I) + ½ N(a u, I), a = 1.5: bimodal along the unit vector u; takes (dim, dtype=, seed=).
Mixture = functools.partial(_GaussianMixture, weight=0.5, separation=1.5)


def train_and_measure(
    estimator: SlicedScoreMatching,
    dist: ClosedFormDistribution,
    *,
    m: int,
    calls: int,
    n_test: int = 2000,
    seed: int = 1,
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
