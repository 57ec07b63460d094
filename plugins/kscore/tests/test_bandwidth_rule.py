"""The "whitened" bandwidth rule: closed form, use by the estimators, MIGE with the plugin's whitened options."""

from __future__ import annotations

import pytest
import torch
from conftest import relative_rmse

import mireg
from mireg.testing import toy_gradient_ratio
from mireg_kscore import KEF, NuMethod
from mireg_kscore.expansion import WHITENED_OPTIONS, whitened_bandwidth


def spread_exactly(m: int, d: int, scale: float, seed: int) -> torch.Tensor:
    """``[m, d]`` float64 samples whose every coordinate has population standard deviation ``scale``."""
    x = torch.randn(m, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = x - x.mean(0)
    return scale * x / x.pow(2).mean(0).sqrt()


# h = spread · max(2, 16 d / M): the floor 2 while d / M <= 1/8, then 16 d / M.
@pytest.mark.parametrize(
    ("m", "d", "factor"), [(512, 64, 2.0), (512, 10, 2.0), (256, 32, 2.0), (128, 64, 8.0), (100, 25, 4.0)]
)
def test_whitened_bandwidth_closed_form(m: int, d: int, factor: float) -> None:
    x = spread_exactly(m, d, 3.0, seed=m + d)
    assert float(whitened_bandwidth(x)) == pytest.approx(3.0 * factor, rel=1e-12)


def test_whitened_bandwidth_per_sample_set() -> None:
    x = torch.stack([spread_exactly(64, 4, s, seed=1) for s in (0.5, 2.0)])  # [2, 64, 4]
    assert torch.allclose(whitened_bandwidth(x), torch.tensor([1.0, 4.0], dtype=torch.float64), rtol=1e-12)


def test_the_rule_counts_only_varying_coordinates() -> None:
    # Zero columns appended (MIGE's stacked terms) and a constant column change nothing: h = 1.5 · max(2, 16·16/96).
    x = spread_exactly(96, 16, 1.5, seed=4)
    padded = torch.cat([x, torch.zeros(96, 16, dtype=x.dtype), torch.full((96, 1), 7.0, dtype=x.dtype)], 1)
    assert float(whitened_bandwidth(padded)) == pytest.approx(4.0, rel=1e-12)
    assert float(whitened_bandwidth(x)) == pytest.approx(4.0, rel=1e-12)


@pytest.mark.parametrize("estimator", [KEF, NuMethod])
def test_the_rule_is_the_bandwidth_the_estimators_use(estimator: type[KEF] | type[NuMethod]) -> None:
    x = spread_exactly(96, 16, 1.5, seed=2)  # h = 1.5 · max(2, 16·16/96) = 4
    by_rule = estimator(**WHITENED_OPTIONS).score(x)  # type: ignore[arg-type]
    fixed = estimator(**{**WHITENED_OPTIONS, "bandwidth": 4.0}).score(x)  # type: ignore[arg-type]
    assert relative_rmse(by_rule, fixed) < 1e-9
    twice = estimator(**{**WHITENED_OPTIONS, "bandwidth_multiplier": 2.0}).score(x)  # type: ignore[arg-type]
    assert relative_rmse(twice, estimator(**{**WHITENED_OPTIONS, "bandwidth": 8.0}).score(x)) < 1e-9  # type: ignore[arg-type]
    assert relative_rmse(twice, by_rule) > 0.01  # the multiplier matters


def test_the_rule_is_scale_equivariant() -> None:
    x = torch.randn(80, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    estimator = KEF(cg_tol=1e-12, cg_iterations=1000, **WHITENED_OPTIONS)  # type: ignore[arg-type]  # solved exactly
    assert torch.allclose(estimator.score(7.0 * x), estimator.score(x) / 7.0, rtol=1e-8, atol=1e-10)


def test_bad_rule_and_identical_samples_raise() -> None:
    with pytest.raises(ValueError, match="bandwidth_rule must be one of"):
        KEF(bandwidth_rule="scott")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="all samples of a set are identical"):
        KEF(bandwidth_rule="whitened").score(torch.ones(10, 3))
    with pytest.raises(mireg.OptionError, match="bandwidth_rule"):
        mireg.score_estimator("kef", bandwidth_rule="silverman")


@pytest.mark.parametrize(("name", "cls"), [("kef", KEF), ("nu-method", NuMethod)])
def test_mige_builds_the_estimators_with_the_whitened_options(name: str, cls: type[KEF] | type[NuMethod]) -> None:
    assert dict(cls.whitened_options) == (
        {**WHITENED_OPTIONS, "kernel": "diagonal-rbf"} if cls is KEF else dict(WHITENED_OPTIONS)
    )
    score = mireg.mi_gradient_estimator("mige", score=name, score_options={"lam": 1e-2}).estimators["joint"]
    built = {key: getattr(score, key) for key in cls.whitened_options}
    assert built == {**cls.whitened_options, "lam": 1e-2}  # given options override the plugin's


# Gaussian toy, 5 seeds (mireg.testing.toy_gradient_ratio), MIGE with the whitened options, measured:
# kef 0.9882 (d = 10, ρ = 0.7) and 1.0064 (d = 20, ρ = 0.9); nu-method 0.9929 and 1.0072. Tolerance: within 2%.
@pytest.mark.parametrize("name", ["kef", "nu-method"])
@pytest.mark.parametrize(("d", "rho"), [(10, 0.7), (20, 0.9)])
def test_mige_on_the_gaussian_toy_at_batch_128(name: str, d: int, rho: float) -> None:
    ratio = toy_gradient_ratio(mireg.mi_gradient_estimator("mige", score=name), d, rho, 128, seeds=5)
    assert abs(ratio - 1) < 0.02
