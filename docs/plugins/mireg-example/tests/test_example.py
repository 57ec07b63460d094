"""The example plugin, installed: found through its entry point, exact on Gaussians, usable by MIGE."""

from __future__ import annotations

import warnings

import pytest
import torch

import mireg
from mireg.testing import (
    Gaussian,
    correlated_gaussian_mi_grad,
    correlated_gaussians,
    relative_rmse,
    sample_with_score,
)
from mireg_example import DiagonalGaussianScore


def test_registered_through_the_entry_point() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # another installed plugin may be broken; not ours
        records = {r.name: r for r in mireg.list_estimators("score")}
    assert records["diag-gauss"].plugin == "mireg-example"
    assert isinstance(mireg.score_estimator("diag-gauss", ridge=0.0), DiagonalGaussianScore)


def test_exact_on_an_axis_aligned_gaussian() -> None:
    generator = torch.Generator().manual_seed(0)
    std = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    x = torch.randn(20_000, 3, generator=generator, dtype=torch.float64) * std + 2.0
    truth = -(x - 2.0) / std**2
    # Only the sampling error of the fitted mean and variances remains: about 2% at 20 000 samples.
    assert relative_rmse(DiagonalGaussianScore(ridge=0.0).score(x), truth) < 0.04


def test_not_exact_on_a_correlated_gaussian() -> None:
    generator = torch.Generator().manual_seed(1)
    x, truth = sample_with_score(Gaussian(4, generator=generator), 4096, generator)
    assert relative_rmse(DiagonalGaussianScore().score(x), truth) > 0.1  # a diagonal fit misses the rotation


def test_mige_with_the_plugin_recovers_the_toy_gradient() -> None:
    mi = mireg.mi_gradient_estimator("mige", score="diag-gauss")
    d, rho = 4, 0.8
    generator = torch.Generator().manual_seed(2)
    grads = []
    for _ in range(20):
        r = torch.tensor(rho, dtype=torch.float64, requires_grad=True)
        x, y = correlated_gaussians(512, d, r, generator, dtype=torch.float64)
        mi(x, y).backward()
        grads.append(float(r.grad))
    # Whitened batches are N(0, I) up to sampling error, where the diagonal fit is exact:
    # the mean of 20 batches of 512 is within 3% of dI/dρ = ρ d / (1 − ρ²).
    assert sum(grads) / len(grads) == pytest.approx(correlated_gaussian_mi_grad(d, rho), rel=0.03)


def test_a_negative_ridge_is_refused_on_every_path() -> None:
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        DiagonalGaussianScore(ridge=-1.0)
    with pytest.raises(mireg.OptionError, match="ridge must be >= 0"):
        mireg.score_estimator("diag-gauss", ridge=-1.0)
