"""Stein gradient estimator against closed-form scores, float32 safety, bad input, registration."""

from __future__ import annotations

import warnings

import pytest
import torch
from conftest import relative_rmse, sample_with_score

import mireg
from mireg.testing import bad_kernel_score_inputs
from mireg_stein import Stein

# Relative RMSE of Stein with default options, measured (float32 and float64 agree to 1e-3) with
# the seeds below; the tolerance is 1.2 × the measured value.
MEASURED = {
    ("gaussian", 2, 128): 0.241,
    ("gaussian", 2, 512): 0.115,
    ("gaussian", 10, 128): 0.351,
    ("gaussian", 10, 512): 0.229,
    ("gaussian", 40, 128): 0.567,
    ("gaussian", 40, 512): 0.301,
    ("mixture", 2, 128): 0.331,
    ("mixture", 2, 512): 0.264,
    ("mixture", 10, 128): 0.351,
    ("mixture", 10, 512): 0.264,
    ("mixture", 40, 128): 0.449,
    ("mixture", 40, 512): 0.273,
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("kind", "d", "m"), list(MEASURED))
def test_accuracy_at_the_samples(kind: str, d: int, m: int, dtype: torch.dtype) -> None:
    x, score = sample_with_score(kind, m, d, dtype, seed=m + d)
    estimate = Stein().score(x)
    assert estimate.dtype == dtype and estimate.shape == x.shape
    assert relative_rmse(estimate, score) < 1.2 * MEASURED[(kind, d, m)]


# Out of sample (fit on 512, evaluate at 256 fresh points): measured 0.195 (gaussian, d=10) and
# 0.226 (mixture, d=10); tolerance 1.2 × measured.
@pytest.mark.parametrize(("kind", "measured"), [("gaussian", 0.195), ("mixture", 0.226)])
def test_accuracy_out_of_sample(kind: str, measured: float) -> None:
    rows, score = sample_with_score(kind, 768, 10, torch.float32, seed=9)
    x, points, score = rows[:512], rows[512:], score[512:]
    assert relative_rmse(Stein().score(x, at=points), score) < 1.2 * measured


def test_matches_the_closed_form_solve() -> None:
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    h = 0.7
    diff = x[:, None, :] - x[None, :, :]  # [M, M, d]: fine for a 40-sample reference
    kernel = torch.exp(-diff.pow(2).sum(-1) / (2 * h**2))
    grad = (diff * kernel[..., None]).sum(1) / h**2  # Σ_m ∇_{x_m} k(x_i, x_m)
    expected = -torch.linalg.solve(kernel + 0.05 * torch.eye(40, dtype=torch.float64), grad)
    assert relative_rmse(Stein(eta=0.05, bandwidth=h).score(x), expected) < 1e-10


def test_float32_is_safe_from_eta_1e_3_up() -> None:
    # d = 2, M = 2048 is the worst conditioned case of the tests (eigenvalues of K down to ~1e-12).
    x = torch.randn(2048, 2, generator=torch.Generator().manual_seed(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        low = Stein(eta=1e-3).score(x)
    reference = Stein(eta=1e-3).score(x.double())
    assert torch.isfinite(low).all()
    assert relative_rmse(low, reference) < 0.05  # measured 0.024, against an error of 0.28 to the true score
    assert relative_rmse(low, -x) < 1.1 * relative_rmse(reference, -x.double())


def test_float32_with_small_eta_warns() -> None:
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(3))
    with pytest.warns(RuntimeWarning, match="eta >= 0.001"):
        Stein(eta=1e-5).score(x)


def test_failed_factorisation_raises_a_clear_error() -> None:
    x = torch.randn(1024, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with pytest.raises(ValueError, match="not numerically positive definite"):
        Stein(eta=0.0).score(x)


def test_batched_equals_one_by_one() -> None:
    x = torch.randn(3, 50, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    points = torch.randn(3, 7, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    estimator = Stein()
    assert torch.allclose(estimator.score(x), torch.stack([estimator.score(a) for a in x]), atol=1e-12)
    batched = estimator.score(x, at=points)
    assert torch.allclose(
        batched, torch.stack([estimator.score(a, at=p) for a, p in zip(x, points, strict=True)]), atol=1e-12
    )


@pytest.mark.parametrize(("samples", "at", "message"), bad_kernel_score_inputs())
def test_bad_input_raises_a_clear_value_error(samples: torch.Tensor, at: torch.Tensor | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Stein().score(samples, at=at)


def test_bad_options_raise() -> None:
    with pytest.raises(ValueError, match="eta must be >= 0"):
        Stein(eta=-1.0)
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        Stein(bandwidth=0.0)


def test_registry() -> None:
    assert "stein" in [info.name for info in mireg.list_estimators("score")]
    estimator = mireg.score_estimator("stein", eta=0.05)
    assert isinstance(estimator, Stein) and estimator.eta == 0.05
    assert estimator.score(torch.randn(20, 3)).shape == (20, 3)
    with pytest.raises(mireg.OptionError, match="etta"):
        mireg.score_estimator("stein", etta=0.1)
