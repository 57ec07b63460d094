"""Heat-flow MI values against closed forms, with the fitted-Gaussian score and a kernel-density score.

The toy (docs/math.md): x, ε ~ N(0, I_d), y = ρx + sqrt(1−ρ²)ε, I = −(d/2) log(1−ρ²). With a score
that depends on the batch only through its sample covariance (the fitted Gaussian) the data and the
control batch give the same integrand, so the estimate is the bias-corrected Gaussian plug-in exactly.
"""

from __future__ import annotations

import pytest
import torch
from conftest import GaussianScore
from torch import Tensor

import mireg
from mireg.heat_flow import (
    gaussian_control_batch,
    gaussian_mi,
    gaussian_mi_bias,
    gaussian_plugin_mi,
    heat_flow_mi,
    log_time_grid,
    normal_scores,
    orthogonal_noise,
)
from mireg.kernels import pairwise_sq_dists, rbf_grad_sum, rbf_kernel, resolve_bandwidth
from mireg.testing import correlated_gaussian_mi, correlated_gaussians

F64 = torch.float64


class KernelDensityScore(mireg.ScoreEstimator):
    """The score of a Gaussian kernel density estimate at median bandwidth: nonlinear in the batch and
    rotation-equivariant, like the kernel estimators of the plugins (none of which the core env has)."""

    name = "kde"

    def _score(self, samples: Tensor, at: Tensor | None) -> Tensor:
        sq = pairwise_sq_dists(samples, samples)
        h = resolve_bandwidth(sq, None, 1.0)
        kernel = rbf_kernel(sq, h)
        return -rbf_grad_sum(kernel, samples, h) / kernel.sum(-1, keepdim=True)


def toy(m: int, d: int, rho: float, seed: int) -> tuple[Tensor, Tensor]:
    return correlated_gaussians(m, d, rho, torch.Generator().manual_seed(seed), dtype=F64)


def estimate(x: Tensor, y: Tensor, score: mireg.ScoreEstimator, seed: int = 0, **options: float) -> float:
    return float(heat_flow_mi(x, y, score, generator=torch.Generator().manual_seed(seed), **options))


def test_noise_is_orthogonal_to_the_batches_and_white() -> None:
    x, y = toy(64, 3, 0.8, seed=1)
    w = torch.cat([x, y], 1)
    w = w - w.mean(0)
    generator = torch.Generator().manual_seed(2)
    control = gaussian_control_batch(w, generator)
    noise = orthogonal_noise(w, control, generator=generator)
    torch.testing.assert_close(control.T @ control, w.T @ w, atol=1e-10, rtol=0)  # the same sample covariance
    torch.testing.assert_close(control.mean(0), torch.zeros(6, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(noise.mean(0), torch.zeros(6, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(noise.T @ noise / 64, torch.eye(6, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(w.T @ noise, torch.zeros(6, 6, dtype=F64), atol=1e-10, rtol=0)
    torch.testing.assert_close(control.T @ noise, torch.zeros(6, 6, dtype=F64), atol=1e-10, rtol=0)


def test_plugin_bias_is_the_wishart_closed_form() -> None:
    # d = 1 + 1: b = ½ [ψ((M − 1)/2) − ψ((M − 2)/2)].
    half = torch.tensor([15.5, 15.0], dtype=F64)
    closed = 0.5 * float(torch.special.digamma(half[0]) - torch.special.digamma(half[1]))
    assert gaussian_mi_bias(32, 1, 1) == pytest.approx(closed, rel=1e-12)
    # Monte Carlo over 4000 Gaussian batches of M = 24, d = 2 + 2, ρ = 0.8: the mean plug-in is
    # I + b (b ≈ 0.27 here) and the corrected one I, each within 4 standard errors.
    m, d, rho, n = 24, 2, 0.8, 4000
    x, y = correlated_gaussians(m * n, d, rho, torch.Generator().manual_seed(3), dtype=F64)
    joint = torch.cat([x, y], 1).reshape(n, m, 2 * d)
    centred = joint - joint.mean(1, keepdim=True)
    covs = centred.transpose(1, 2) @ centred / m
    plugins = torch.stack([gaussian_mi(c, d) for c in covs])
    truth, bias = correlated_gaussian_mi(d, rho), gaussian_mi_bias(m, d, d)
    error = 4 * float(plugins.std()) / n**0.5
    assert bias > 5 * error
    assert float(plugins.mean()) == pytest.approx(truth + bias, abs=error)
    assert float(gaussian_plugin_mi(x[:m], y[:m])) == pytest.approx(float(plugins[0]) - bias, abs=1e-12)


@pytest.mark.parametrize("warped", [False, True])
def test_fitted_gaussian_score_gives_the_corrected_plugin_exactly(warped: bool) -> None:
    x, y = toy(80, 3, 0.9, seed=4)
    y = y[:, :2]  # dx = 3, dy = 2
    if warped:  # any data: the integrand depends on the batch only through Σ̂ + t I
        x, y = x + 0.4 * x**3, y + 0.4 * y**3
    assert estimate(x, y, GaussianScore()) == pytest.approx(float(gaussian_plugin_mi(x, y)), abs=1e-9)


def test_kernel_correction_vanishes_in_the_mean_on_gaussians() -> None:
    # On Gaussians the correction ½∫(F̂ − F̂_G) has mean 0 for any score estimator (module docstring),
    # so the estimate is as unbiased as the corrected plug-in: at M = 128, d = 2 + 2, ρ = 0.9 the
    # kernel-density score's corrections are each within ±0.05 nats and their mean over 8 seeds
    # within ±0.01 nats of 0 (the plug-in itself spreads by ±0.17 nats over these batches).
    corrections = []
    for seed in range(8):
        x, y = toy(128, 2, 0.9, seed)
        corrections.append(
            estimate(x, y, KernelDensityScore(), seed=seed, points_per_decade=1) - float(gaussian_plugin_mi(x, y))
        )
    assert max(abs(c) for c in corrections) < 0.05
    assert abs(sum(corrections) / len(corrections)) < 0.01


def test_invariant_to_affine_maps_of_each_side_draw_for_draw() -> None:
    x, y = toy(96, 3, 0.7, seed=5)
    x, y = x + 0.4 * x**3, torch.tanh(y)
    generator = torch.Generator().manual_seed(6)
    a = torch.randn(3, 3, generator=generator, dtype=F64) + 2 * torch.eye(3, dtype=F64)
    b = torch.randn(3, 3, generator=generator, dtype=F64) - 3 * torch.eye(3, dtype=F64)
    base = estimate(x, y, KernelDensityScore(), points_per_decade=1)
    assert abs(base - float(gaussian_plugin_mi(x, y))) > 5e-3  # the kernel part is not trivial here
    assert estimate(x @ a + 5.0, y, KernelDensityScore(), points_per_decade=1) == pytest.approx(base, abs=1e-8)
    assert estimate(x, 0.01 * y @ b - 2.0, KernelDensityScore(), points_per_decade=1) == pytest.approx(base, abs=1e-8)


def test_independent_sides_give_about_zero() -> None:
    # ρ = 0, M = 256, d = 3 + 3: each of 5 seeds within ±0.05 nats (the plug-in's spread is ≈ 0.01).
    for seed in range(5):
        x, y = toy(256, 3, 0.0, seed)
        assert abs(estimate(x, y, KernelDensityScore(), seed=seed, points_per_decade=1)) < 0.05
        assert abs(estimate(x, y, GaussianScore(), seed=seed)) < 0.05


def test_draws_average_consecutive_single_draws() -> None:
    x, y = toy(96, 2, 0.8, seed=7)
    x = x + 0.4 * x**3
    generator = torch.Generator().manual_seed(0)
    singles = [float(heat_flow_mi(x, y, KernelDensityScore(), generator=generator, points_per_decade=1)) for _ in "ab"]
    assert abs(singles[0] - singles[1]) > 1e-3  # the draws differ
    generator = torch.Generator().manual_seed(0)
    two = float(heat_flow_mi(x, y, KernelDensityScore(), draws=2, generator=generator, points_per_decade=1))
    assert two == pytest.approx(sum(singles) / 2, abs=1e-10)


def test_normal_scores_make_the_value_invariant_to_increasing_maps() -> None:
    x, y = toy(64, 2, 0.8, seed=11)
    scores = normal_scores(x)
    levels = torch.special.ndtri(torch.arange(1, 65, dtype=F64) / 65)
    torch.testing.assert_close(scores[:, 0].sort().values, levels, atol=1e-12, rtol=0)
    assert bool((scores[:, 1].argsort() == x[:, 1].argsort()).all())  # order kept
    base = estimate(x, y, KernelDensityScore(), ranks=True, points_per_decade=1)
    warped = estimate(x.exp(), y + 0.4 * y**3, KernelDensityScore(), ranks=True, points_per_decade=1)
    assert warped == pytest.approx(base, abs=1e-12)


def test_log_time_grid() -> None:
    grid = log_time_grid(1e-4, 1e3, 2)
    assert len(grid) == 15
    assert float(grid[0]) == pytest.approx(1e-4) and float(grid[-1]) == pytest.approx(1e3)
    assert len(log_time_grid(1e-2, 1e2, 1.5)) == 7  # at least 1.5 per decade
    with pytest.raises(ValueError, match="need 0 < t_min < t_max"):
        log_time_grid(1.0, 0.5, 2)
    with pytest.raises(ValueError, match="points_per_decade must be > 0"):
        log_time_grid(1e-3, 1.0, 0)


def test_bad_input_gets_clear_errors() -> None:
    x, y = toy(64, 2, 0.5, seed=8)
    score = GaussianScore()
    with pytest.raises(ValueError, match="same number of samples"):
        heat_flow_mi(x, y[:50], score)
    with pytest.raises(ValueError, match="x contains 1 NaN/Inf"):
        heat_flow_mi(torch.cat([x[:-1], torch.tensor([[float("nan"), 0.0]], dtype=F64)]), y, score)
    with pytest.raises(ValueError, match=r"needs M >= 3 \(dx \+ dy\) \+ 2 = 14 rows"):
        heat_flow_mi(x[:13], y[:13], score)
    with pytest.raises(ValueError, match="y has a singular sample covariance"):
        heat_flow_mi(x, torch.cat([y[:, :1], 2 * y[:, :1]], 1), score)
    with pytest.raises(ValueError, match="x has a singular sample covariance"):
        heat_flow_mi(torch.cat([x[:, :1], torch.ones(64, 1, dtype=F64)], 1), y, score, ranks=True)
    with pytest.raises(ValueError, match="y is an affine function of x"):
        heat_flow_mi(x, x @ torch.tensor([[1.0, 2.0], [0.5, -1.0]], dtype=F64) + 3.0, score)
    with pytest.raises(ValueError, match="y is an affine function of x"):
        gaussian_plugin_mi(x, 2 * x[:, :1])
    with pytest.raises(ValueError, match="draws must be a positive integer"):
        heat_flow_mi(x, y, score, draws=0)
    with pytest.raises(ValueError, match="need 0 < t_min < t_max"):
        heat_flow_mi(x, y, score, t_min=0.0)
    with pytest.raises(ValueError, match="more rows than dx"):
        gaussian_mi_bias(4, 2, 2)


def test_mige_estimate_is_the_heat_flow_value() -> None:
    x, y = toy(64, 2, 0.9, seed=9)
    mi = mireg.mi_gradient_estimator("mige", score=GaussianScore(), value_score=None)
    value = mi.estimate(x.requires_grad_(), y)
    assert value.ndim == 0 and not value.requires_grad
    ranked = float(gaussian_plugin_mi(normal_scores(x.detach()), normal_scores(y)))  # MIGE uses normal scores
    assert float(value) == pytest.approx(ranked, abs=1e-9)
    wide = torch.randn(64, 40, dtype=F64, generator=torch.Generator().manual_seed(10))
    with pytest.raises(ValueError, match="use a larger batch or fewer dimensions"):
        mi.estimate(wide, y)
    projected = mireg.mi_gradient_estimator(
        "mige", score=GaussianScore(), value_score=None, projection_dim=4, fixed_projection=True
    )
    assert float(projected.estimate(wide, y)) == pytest.approx(
        float(gaussian_plugin_mi(normal_scores(projected._project(wide)), normal_scores(y))), abs=1e-9
    )


def test_mige_estimate_averages_chunks_of_value_batch_rows() -> None:
    # 200 rows with value_batch 64: 3 chunks of 67, 67 and 66 rows, each valued on its own.
    x, y = toy(200, 2, 0.8, seed=12)
    mi = mireg.mi_gradient_estimator("mige", score=GaussianScore(), value_score=None, value_batch=64)
    chunks = [
        float(gaussian_plugin_mi(normal_scores(a), normal_scores(b)))
        for a, b in zip(x.tensor_split(3), y.tensor_split(3), strict=True)
    ]
    assert float(mi.estimate(x, y)) == pytest.approx(sum(chunks) / 3, abs=1e-9)
    wide = torch.randn(200, 20, dtype=F64, generator=torch.Generator().manual_seed(13))  # a value needs 3·22 + 2 rows
    chunked = mireg.mi_gradient_estimator("mige", score=GaussianScore(), value_score=None, value_batch=16)
    two = [
        float(gaussian_plugin_mi(normal_scores(a), normal_scores(b)))
        for a, b in zip(wide.tensor_split(2), y.tensor_split(2), strict=True)
    ]
    assert float(chunked.estimate(wide, y)) == pytest.approx(sum(two) / 2, abs=1e-9)
    whole = mireg.mi_gradient_estimator("mige", score=GaussianScore(), value_score=None, value_batch=None)
    assert float(whole.estimate(x, y)) == pytest.approx(
        float(gaussian_plugin_mi(normal_scores(x), normal_scores(y))), abs=1e-9
    )


def test_mige_value_options_are_checked() -> None:
    with pytest.raises(mireg.OptionError, match="need value_t_min < value_t_max"):
        mireg.mi_gradient_estimator("mige", score=GaussianScore(), value_t_min=1.0, value_t_max=0.5)
    with pytest.raises(mireg.OptionError, match="value_score_options apply to a named value_score"):
        mireg.mi_gradient_estimator("mige", score=GaussianScore(), value_score=None, value_score_options={"eta": 1})
    with pytest.raises(mireg.OptionError, match="value_draws"):
        mireg.mi_gradient_estimator("mige", score=GaussianScore(), value_draws=0)
    unknown = mireg.mi_gradient_estimator("mige", score=GaussianScore(), value_score="steinn")
    with pytest.raises(mireg.UnknownEstimatorError, match="value_score.*'steinn'.*value_score=None"):
        unknown.estimate(*toy(64, 2, 0.5, seed=1))
