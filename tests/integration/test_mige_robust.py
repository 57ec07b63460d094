"""MIGE and the score estimators at any scale, in every supported dtype, from their first call.

Closed form: x ~ N(0, I_5), z = c (x W + 0.5 ε), ε ~ N(0, I_3). I(x; z) = ½ log det(I + WᵀW / 0.25)
does not depend on c (nor on a scale applied to x), so neither does dI/dW, which autograd gives
from the closed form.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import Tensor

import mireg
from mireg.errors import CalibrationWarning, NonFiniteError, ScoreOutputError
from mireg.mige import MIGE, preconditioned_score
from mireg.testing import FittedGaussianScore

SCALES = (1e-4, 1e-2, 1.0, 1e2, 1e4)


def closed_form_grad(w: Tensor) -> Tensor:
    """dI/dW ``[5, 3]`` of I(x; z) = ½ log det(I + WᵀW / 0.25), in float64."""
    weights = w.detach().double().requires_grad_()
    (0.5 * torch.logdet(torch.eye(w.shape[1], dtype=torch.float64) + weights.T @ weights / 0.25)).backward()
    assert weights.grad is not None
    return weights.grad


def mige_grad(c: float, side: str, dtype: torch.dtype, seed: int = 0, **options: object) -> tuple[Tensor, Tensor]:
    """The MIGE estimate of dI/dW on one batch of 512 with x or z scaled by ``c``, and W."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 5, generator=generator, dtype=torch.float64)
    w = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    noise = torch.randn(512, 3, generator=generator, dtype=torch.float64)
    weights = w.to(dtype).requires_grad_()
    z = (x.to(dtype) @ weights + 0.5 * noise.to(dtype)) * (c if side == "z" else 1.0)
    mireg.mi_gradient_estimator("mige", **options)(x.to(dtype) * (c if side == "x" else 1.0), z).backward()
    assert weights.grad is not None
    return weights.grad.double(), w


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("side", ["x", "z"])
@pytest.mark.parametrize("c", SCALES)
def test_default_mige_gradient_does_not_depend_on_the_scales(c: float, side: str, dtype: torch.dtype) -> None:
    estimate, w = mige_grad(c, side, dtype)
    truth = closed_form_grad(w)
    # Measured on this batch: cosine 0.992-0.998, norm ratio 1.03-1.04 at every scale; the old
    # mean-variance shrinkage gave cosine -0.998 at c = 1e4.
    assert float(torch.nn.functional.cosine_similarity(estimate.flatten(), truth.flatten(), dim=0)) > 0.97
    assert abs(float(estimate.norm() / truth.norm()) - 1) < 0.1
    reference, _ = mige_grad(1.0, side, dtype)
    # Standardising first makes the estimate scale-equivariant up to rounding.
    torch.testing.assert_close(estimate, reference, rtol=1e-3 if dtype == torch.float32 else 1e-9, atol=0)


def test_full_whitening_equals_diag_standardisation_for_independent_scaled_coordinates() -> None:
    # Coordinates of scale 1e-4 and 1e4 side by side: the shrinkage no longer swamps the small one.
    generator = torch.Generator().manual_seed(1)
    samples = torch.randn(400, 2, generator=generator, dtype=torch.float64) * torch.tensor([1e-4, 1e4])
    raw = FittedGaussianScore().score(samples)
    for mode in ("full", "diag"):
        got = preconditioned_score(FittedGaussianScore(), samples, precondition=mode, shrinkage=1e-3)
        torch.testing.assert_close(got, raw, rtol=1e-2, atol=0)


def test_the_paper_setting_refuses_scales_a_kernel_cannot_resolve() -> None:
    with pytest.raises(ValueError, match=r"differ in scale by a factor of .* precondition='auto' or 'diag'"):
        mige_grad(1e6, "z", torch.float32, precondition="none", calibrate="none")


def test_samples_whose_deviations_overflow_float32_are_standardised_exactly() -> None:
    # Finite values whose deviations from the mean (4e38) exceed the float32 range (3.4e38): the moments are
    # taken in units of each coordinate's largest |value|, so the score is that of the samples scaled by an exact
    # power of two, scaled back (a score is 1/scale: ~1e-39, float32 subnormals, hence rtol 1e-4).
    z = torch.tensor([3e38, -3e38, -3e38, -1e38] * 8).view(32, 1).repeat(1, 2) * torch.tensor([1.0, -0.5])
    z = z + torch.linspace(0, 1e37, 32)[:, None]
    estimator = FittedGaussianScore()
    small = preconditioned_score(estimator, z * 2.0**-100, precondition="diag")
    torch.testing.assert_close(
        preconditioned_score(estimator, z, precondition="diag") * 2.0**100, small, rtol=1e-4, atol=0
    )
    # In raw coordinates (the paper's setting) the deviations themselves are needed, and overflow.
    with pytest.raises(NonFiniteError, match="overflow their dtype when centred"):
        MIGE(score=estimator, precondition="none")(torch.randn(32, 2), z.requires_grad_())


@pytest.mark.parametrize("c", [1e-30, 1e30])
def test_mige_at_the_edges_of_the_float32_range(c: float) -> None:
    estimate, _ = mige_grad(c, "z", torch.float32)
    reference, _ = mige_grad(1.0, "z", torch.float32)
    torch.testing.assert_close(estimate, reference, rtol=1e-3, atol=0)


class BadScore(mireg.ScoreEstimator):
    """A plugin that returns what it is told to: a wrong width or NaN."""

    name = "bad-plugin"

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def _score(self, samples: Tensor, at: Tensor | None) -> Tensor:
        if self.mode == "narrow":
            return samples[:, :1]
        return torch.full_like(samples, float("nan"))


@pytest.mark.parametrize(
    ("mode", "error", "message"),
    [
        ("narrow", ScoreOutputError, r"'bad-plugin' \(.*BadScore\) returned shape \(64, 1\), expected \(64, 3\)"),
        ("nan", NonFiniteError, r"'bad-plugin' \(.*BadScore\) returned 192 NaN/Inf"),
    ],
)
def test_mige_names_a_score_estimator_that_breaks_the_contract(mode: str, error: type, message: str) -> None:
    mi = MIGE(score=BadScore(mode), calibrate="none", precondition="none")
    with pytest.raises(error, match=message):
        mi(torch.randn(64, 2), torch.randn(64, 3, requires_grad=True))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["ssge", "stein", "ssm"])
def test_half_precision_is_computed_in_float32_and_cast_back(name: str, dtype: torch.dtype) -> None:
    x = torch.randn(128, 3, generator=torch.Generator().manual_seed(2))
    half = mireg.score_estimator(name).score(x.to(dtype))
    full = mireg.score_estimator(name).score(x.to(dtype).float())
    assert half.dtype == dtype
    torch.testing.assert_close(half.float(), full.to(dtype).float(), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_mige_takes_half_precision(dtype: torch.dtype) -> None:
    estimate, w = mige_grad(1.0, "z", dtype)
    truth = closed_form_grad(w)
    assert float(torch.nn.functional.cosine_similarity(estimate.flatten(), truth.flatten(), dim=0)) > 0.95


@pytest.mark.parametrize("name", ["ssge", "stein"])
@pytest.mark.parametrize("scale", [1e-20, 1e20])
def test_kernel_estimators_are_scale_equivariant_at_extreme_scales(name: str, scale: float) -> None:
    x = torch.randn(128, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    reference = mireg.score_estimator(name).score(x.float())
    scaled = mireg.score_estimator(name).score((x * scale).float())
    # s(cx) = s(x) / c; only the rounding of x * c differs.
    torch.testing.assert_close(scaled.double() * scale, reference.double(), rtol=1e-3, atol=1e-3)


def test_an_untrained_score_network_skips_calibration_with_one_warning() -> None:
    mi = mireg.mi_gradient_estimator("mige", score="ssm")
    weights = torch.randn(5, 3, generator=torch.Generator().manual_seed(4), requires_grad=True)
    generator = torch.Generator().manual_seed(5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(5):
            x = torch.randn(128, 5, generator=generator)
            mi(x, x @ weights + 0.5 * torch.randn(128, 3, generator=generator)).backward()
    assert weights.grad is not None and bool(torch.isfinite(weights.grad).all())
    calibration = [w for w in caught if issubclass(w.category, CalibrationWarning)]
    assert len(calibration) == 1 and "used uncalibrated" in str(calibration[0].message)


def test_a_batch_of_two_is_refused_with_the_minimum_and_three_works() -> None:
    w = torch.randn(5, 3, requires_grad=True)
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(6))
    with pytest.raises(ValueError, match="at least 3 samples, got 2"):
        mireg.mi_gradient_estimator("mige")(x[:2], x[:2] @ w)
    mireg.mi_gradient_estimator("mige")(x, x @ w).backward()
    assert w.grad is not None and bool(torch.isfinite(w.grad).all())


def test_identical_rows_and_constant_coordinates() -> None:
    mi = MIGE(score=FittedGaussianScore())
    z = torch.ones(16, 3, requires_grad=True)
    with pytest.raises(ValueError, match="all 16 samples of the batch are identical.*encoder has not collapsed"):
        mi(torch.randn(16, 2), z)
    # A constant coordinate (a dead unit) gets no gradient; the others are unaffected.
    generator = torch.Generator().manual_seed(7)
    live = torch.randn(256, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    x = torch.randn(256, 2, generator=generator, dtype=torch.float64)
    with_dead = torch.cat([live, torch.zeros(256, 1, dtype=torch.float64)], 1)
    (g_dead,) = torch.autograd.grad(MIGE(score=FittedGaussianScore(ridge=1e-6))(x, with_dead), [live])
    (g_live,) = torch.autograd.grad(MIGE(score=FittedGaussianScore(ridge=1e-6))(x, live), [live])
    torch.testing.assert_close(g_dead, g_live, rtol=1e-9, atol=1e-12)


def test_log_var_of_the_unflattened_shape_is_accepted() -> None:
    mu = torch.randn(8, 3, 1, requires_grad=True)
    log_var = torch.zeros(8, 3, 1, requires_grad=True)
    z = mu + (0.5 * log_var).exp() * torch.randn(8, 3, 1)
    MIGE(score=FittedGaussianScore())(torch.randn(8, 2), z, log_var=log_var).backward()
    assert log_var.grad is not None and log_var.grad.shape == (8, 3, 1)
    with pytest.raises(ValueError, match=r"8 rows of 3 values once flattened, .* got shape \(8, 2\)"):
        MIGE(score=FittedGaussianScore())(torch.randn(8, 2), z, log_var=torch.zeros(8, 2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_singular_correlation_matrix_names_collinear_coordinates(dtype: torch.dtype) -> None:
    # Only without shrinkage: a duplicated coordinate makes the correlation matrix singular (the factorisation
    # may pass on a rounding error; its smallest pivot gives it away).
    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(8), dtype=dtype)
    duplicated = torch.cat([z, z[:, :1]], 1)
    with pytest.raises(ValueError, match="linear combinations of others .* use shrinkage > 0"):
        preconditioned_score(FittedGaussianScore(), duplicated, precondition="full", shrinkage=0.0)
    # With the default shrinkage the same batch is whitened without complaint.
    assert bool(torch.isfinite(preconditioned_score(FittedGaussianScore(ridge=1e-6), duplicated)).all())
