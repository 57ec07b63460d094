"""SSGE against closed-form scores, its exactness against Stein, bad input and registration."""

from __future__ import annotations

import pytest
import torch
from conftest import relative_rmse, sample_with_score

import mireg
from mireg.testing import bad_kernel_score_inputs
from mireg_ssge import SSGE
from mireg_ssge import ssge as ssge_module

# Relative RMSE of SSGE with default options, measured (float32 and float64 agree to 1e-3) with
# the seeds below; the tolerance is 1.2 × the measured value.
MEASURED = {
    ("gaussian", 2, 128): 0.367,
    ("gaussian", 2, 512): 0.281,
    ("gaussian", 10, 128): 0.405,
    ("gaussian", 10, 512): 0.320,
    ("gaussian", 40, 128): 0.584,
    ("gaussian", 40, 512): 0.343,
    ("mixture", 2, 128): 0.298,
    ("mixture", 2, 512): 0.285,
    ("mixture", 10, 128): 0.430,
    ("mixture", 10, 512): 0.371,
    ("mixture", 40, 128): 0.453,
    ("mixture", 40, 512): 0.313,
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("kind", "d", "m"), list(MEASURED))
def test_accuracy_at_the_samples(kind: str, d: int, m: int, dtype: torch.dtype) -> None:
    x, score = sample_with_score(kind, m, d, dtype, seed=m + d)
    estimate = SSGE().score(x)
    assert estimate.dtype == dtype and estimate.shape == x.shape
    assert relative_rmse(estimate, score) < 1.2 * MEASURED[(kind, d, m)]


# Out of sample (fit on 512, evaluate at 256 fresh points): measured 0.311 (gaussian, d=10) and
# 0.358 (mixture, d=10); tolerance 1.2 × measured.
@pytest.mark.parametrize(("kind", "measured"), [("gaussian", 0.311), ("mixture", 0.358)])
def test_accuracy_out_of_sample(kind: str, measured: float) -> None:
    rows, score = sample_with_score(kind, 768, 10, torch.float32, seed=9)
    x, points, score = rows[:512], rows[512:], score[512:]
    assert relative_rmse(SSGE().score(x, at=points), score) < 1.2 * measured


def test_subspace_solver_matches_full_eigh_at_m_2048() -> None:
    # Measured: relative RMSE 0.2254 (eigh) and 0.2222 (subspace) on N(0, I), d = 10; the two
    # estimates differ by 0.03 relative to the score (tolerance 0.06).
    x = torch.randn(2048, 10, generator=torch.Generator().manual_seed(0))
    full = SSGE(eigensolver="eigh").score(x)
    top = SSGE(eigensolver="subspace").score(x)
    assert relative_rmse(top, -x) < 1.05 * relative_rmse(full, -x)
    assert relative_rmse(top, full) < 0.06


# The top-J (Nyström) solver against the full eigh, relative RMSE to the true score: measured
# worst ratio 1.019 over N(0, I), N(μ, Σ) and the mixture, d in {2, 5, 10, 20}, M in {512, 2048},
# default and MIGE options; these three cases measured 0.995, 1.000 and 1.009 (tolerance 1.02).
@pytest.mark.parametrize(
    ("kind", "d", "options"),
    [
        ("gaussian", 10, {}),
        ("mixture", 5, {}),
        ("gaussian", 10, {"eta": 0.0, "threshold": 0.999, "bandwidth_multiplier": 2.0}),
    ],
)
def test_top_j_solver_keeps_the_accuracy_of_eigh(kind: str, d: int, options: dict[str, float]) -> None:
    x, score = sample_with_score(kind, 1024, d, torch.float32, seed=d)
    full = SSGE(eigensolver="eigh", **options).score(x)
    top = SSGE(**options).score(x)
    assert relative_rmse(top, score) < 1.02 * relative_rmse(full, score)


def test_top_j_solver_float64_fixed_count_and_warm_started_growth(monkeypatch: pytest.MonkeyPatch) -> None:
    # Measured ratios to the eigh path: 1.011 (n_eigen = 40) and 0.999 (threshold 0.995, block
    # grown from a deliberately small first block); tolerance 1.02.
    x = torch.randn(1024, 10, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for options in ({"n_eigen": 40}, {"threshold": 0.995}):
        full = SSGE(eigensolver="eigh", **options).score(x)
        monkeypatch.setattr(ssge_module, "SKETCH_FACTOR", 1)  # first block too small: it must grow
        top = SSGE(**options).score(x)
        assert top.dtype == torch.float64
        assert relative_rmse(top, -x) < 1.02 * relative_rmse(full, -x)


def test_in_sample_is_the_nystrom_extension_at_the_samples() -> None:
    x = torch.randn(100, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    estimator = SSGE(eigensolver="eigh")
    assert relative_rmse(estimator.score(x), estimator.score(x, at=x)) < 1e-10


def test_threshold_never_keeps_none_nor_all() -> None:
    x = torch.randn(32, 40, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    tiny = SSGE(threshold=1e-9, eta=0.0, eigensolver="eigh").score(x)
    assert relative_rmse(tiny, SSGE(n_eigen=1, eta=0.0, eigensolver="eigh").score(x)) < 1e-12
    assert tiny.abs().max() > 0
    almost_all = SSGE(threshold=1 - 1e-12, eta=0.0, eigensolver="eigh").score(x)
    assert relative_rmse(almost_all, SSGE(n_eigen=31, eta=0.0, eigensolver="eigh").score(x)) < 1e-12
    assert relative_rmse(almost_all, SSGE(n_eigen=32, eta=0.0, eigensolver="eigh").score(x)) > 1e-6


def test_number_of_eigenpairs_follows_each_batch() -> None:
    estimator = SSGE()
    for m in (64, 256, 64):
        x = torch.randn(m, 3, generator=torch.Generator().manual_seed(m))
        assert torch.equal(estimator.score(x), SSGE().score(x))


def test_batched_equals_one_by_one() -> None:
    x = torch.randn(3, 2, 50, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    points = torch.randn(3, 2, 7, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    for solver in ("eigh", "subspace"):
        estimator = SSGE(n_eigen=6, eigensolver=solver)
        batched = estimator.score(x, at=points)
        assert batched.shape == (3, 2, 7, 4)
        single = torch.stack(
            [
                torch.stack([estimator.score(a, at=p) for a, p in zip(xs, ps, strict=True)])
                for xs, ps in zip(x, points, strict=True)
            ]
        )
        assert torch.allclose(batched, single, atol=1e-10, rtol=1e-8)
    threshold = SSGE(eigensolver="eigh")
    assert torch.allclose(threshold.score(x)[1, 0], threshold.score(x[1, 0]), atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("estimator", [SSGE(), SSGE(n_eigen=20)], ids=["threshold", "n_eigen"])
def test_batched_equals_one_by_one_on_the_subspace_path(estimator: SSGE) -> None:
    # M = 300 takes the subspace solver, whose block and random start follow each set alone.
    x = torch.randn(2, 300, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    x[1] *= torch.tensor([1.0, 4.0, 0.25], dtype=torch.float64)  # a different spectrum, so a different block
    points = torch.randn(2, 40, 3, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    for at in (None, points):
        single = torch.stack([estimator.score(x[i], at=None if at is None else at[i]) for i in range(2)])
        torch.testing.assert_close(estimator.score(x, at=at), single, rtol=0.0, atol=0.0)


@pytest.mark.parametrize(("samples", "at", "message"), bad_kernel_score_inputs())
def test_bad_input_raises_a_clear_value_error(samples: torch.Tensor, at: torch.Tensor | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SSGE().score(samples, at=at)


def test_bad_options_raise() -> None:
    with pytest.raises(ValueError, match="either threshold or n_eigen"):
        SSGE(threshold=0.9, n_eigen=3)
    with pytest.raises(ValueError, match="threshold must be in"):
        SSGE(threshold=1.0)
    with pytest.raises(ValueError, match="exceeds the number of samples"):
        SSGE(n_eigen=11).score(torch.randn(10, 2))


def test_fixed_bandwidth_is_used() -> None:
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    median = SSGE(eigensolver="eigh").score(x)
    assert relative_rmse(SSGE(bandwidth=50.0, eigensolver="eigh").score(x), median) > 0.1


def test_registry() -> None:
    assert "ssge" in [info.name for info in mireg.list_estimators("score")]
    estimator = mireg.score_estimator("ssge", threshold=0.99)
    assert isinstance(estimator, SSGE) and estimator.threshold == 0.99
    assert estimator.score(torch.randn(20, 3)).shape == (20, 3)
    with pytest.raises(mireg.OptionError, match="threshhold"):
        mireg.score_estimator("ssge", threshhold=0.99)
