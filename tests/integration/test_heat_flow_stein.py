"""Heat-flow MI with the Stein estimator (plugin) against the closed form, at the batch MIGE trains with.

The toy (docs/math.md): x, ε ~ N(0, I_d), y = ρx + sqrt(1−ρ²)ε, I = −(d/2) log(1−ρ²); the warped toy
maps every coordinate by t ↦ t + 0.4t³, which keeps I and makes the joint non-Gaussian. Float32
batches of M = 512, seeds 0-2, default grid.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import mireg
from mireg.heat_flow import gaussian_plugin_mi, heat_flow_mi
from mireg.testing import correlated_gaussian_mi, correlated_gaussians
from mireg_stein import Stein

STEIN = Stein()  # eta 0.1, twice the median bandwidth: the most accurate values in benchmarks/mi_values.py


def toy(
    m: int, d: int, rho: float, seed: int, *, warped: bool = False, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    x, y = correlated_gaussians(m, d, rho, torch.Generator().manual_seed(seed), dtype=torch.float64)
    if warped:
        x, y = x + 0.4 * x**3, y + 0.4 * y**3
    return x.to(dtype), y.to(dtype)


def estimate(x: Tensor, y: Tensor, seed: int, *, ranks: bool = False) -> float:
    return float(heat_flow_mi(x, y, STEIN, generator=torch.Generator().manual_seed(seed), ranks=ranks))


@pytest.mark.parametrize(("d", "rho"), [(5, 0.9), (20, 0.99)])
def test_gaussians_within_5_percent(d: int, rho: float) -> None:
    values = [estimate(*toy(512, d, rho, seed), seed) for seed in range(3)]
    assert sum(values) / 3 == pytest.approx(correlated_gaussian_mi(d, rho), rel=0.05)


def test_warped_toy_within_15_percent_where_the_plugin_is_not() -> None:
    truth = correlated_gaussian_mi(5, 0.9)  # 4.15 nats
    batches = [toy(512, 5, 0.9, seed, warped=True) for seed in range(3)]
    heat = sum(estimate(x, y, seed) for seed, (x, y) in enumerate(batches)) / 3
    plugin = sum(float(gaussian_plugin_mi(x, y)) for x, y in batches) / 3
    assert heat == pytest.approx(truth, rel=0.15)
    assert abs(heat - truth) < 0.6 * abs(plugin - truth)  # the plug-in misses by 0.53 nats (13%)


def test_independent_sides_give_about_zero() -> None:
    # ρ = 0, d = 5 + 5: within ±0.05 nats for each of 3 seeds (M = 512).
    for seed in range(3):
        assert abs(estimate(*toy(512, 5, 0.0, seed), seed)) < 0.05


def test_normal_scores_remove_the_heavy_tail_artefact() -> None:
    # Independent warped sides (I = 0): heavy-tailed marginals make the kernel scores report about
    # +0.3 nats of dependence, which the Gaussian control does not cancel; normal scores do.
    for seed in range(2):
        x, y = toy(512, 5, 0.0, seed, warped=True)
        assert abs(estimate(x, y, seed, ranks=True)) < 0.05


def test_invariant_to_affine_maps_of_each_side() -> None:
    x, y = toy(128, 2, 0.8, seed=3, warped=True, dtype=torch.float64)
    generator = torch.Generator().manual_seed(4)
    a = torch.randn(2, 2, generator=generator, dtype=torch.float64) + 2 * torch.eye(2, dtype=torch.float64)
    base = estimate(x, y, 0)
    assert abs(base - float(gaussian_plugin_mi(x, y))) > 1e-2  # the kernel part is not trivial
    assert estimate(100 * x @ a - 3.0, y, 0) == pytest.approx(base, abs=1e-7)
    assert estimate(x, -0.1 * y + 1.0, 0) == pytest.approx(base, abs=1e-7)


def test_mige_estimate_uses_its_own_score_estimator_without_value_score() -> None:
    x, y = toy(256, 3, 0.9, seed=5)
    mi = mireg.mi_gradient_estimator("mige", score=STEIN, seed=11, value_score=None)
    assert float(mi.estimate(x, y)) == pytest.approx(estimate(x, y, 11, ranks=True), abs=1e-6)


def test_mige_default_value_score_is_stein_at_one_and_a_half_median_bandwidths() -> None:
    x, y = toy(256, 3, 0.9, seed=5)
    value = float(mireg.mi_gradient_estimator("mige", seed=11).estimate(x, y))
    generator = torch.Generator().manual_seed(11)
    assert value == pytest.approx(
        float(heat_flow_mi(x, y, Stein(bandwidth_multiplier=1.5), generator=generator, ranks=True)), abs=1e-6
    )


@pytest.mark.parametrize(("d", "rho", "warped"), [(5, 0.9, False), (20, 0.5, False), (20, 0.9, True)])
def test_mige_default_value_within_5_percent(d: int, rho: float, warped: bool) -> None:
    # MIGE.estimate with its defaults on one batch of M = 512, mean over seeds 0-2 (normal scores make the
    # warped toy's value that of the Gaussian one).
    mi = mireg.mi_gradient_estimator("mige")
    values = [float(mi.estimate(*toy(512, d, rho, seed, warped=warped))) for seed in range(3)]
    assert sum(values) / 3 == pytest.approx(correlated_gaussian_mi(d, rho), rel=0.05)
