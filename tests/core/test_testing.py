"""mireg.testing: the closed-form helpers are right (scores against autograd, MI against log-determinants)."""

from __future__ import annotations

import math

import pytest
import torch

from mireg.testing import (
    Gaussian,
    GaussianMixture,
    StandardNormal,
    correlated_gaussian_bound_target,
    correlated_gaussian_mi,
    correlated_gaussian_mi_grad,
    correlated_gaussian_two_js,
    correlated_gaussians,
    relative_rmse,
    sample_with_score,
)


def _autograd_score(dist: object, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(dist.log_prob(x).sum(), x)  # type: ignore[attr-defined]
    return grad


@pytest.mark.parametrize("dim", [1, 3, 10])
@pytest.mark.parametrize("law", [StandardNormal, Gaussian, GaussianMixture])
def test_score_is_the_gradient_of_the_log_density(law: type, dim: int) -> None:
    dist = law(dim) if law is StandardNormal else law(dim, seed=dim)
    x, score = sample_with_score(dist, 200, torch.Generator().manual_seed(1))
    assert x.shape == score.shape == (200, dim) and x.dtype == torch.float64
    assert relative_rmse(score, _autograd_score(dist, x)) < 1e-12
    assert torch.allclose(dist.score(x), score, rtol=0, atol=1e-12)


def test_log_densities_are_normalised_and_match_torch_distributions() -> None:
    dist = Gaussian(4, seed=2)
    x = dist.sample(50, torch.Generator().manual_seed(3))
    reference = torch.distributions.MultivariateNormal(dist.mean, covariance_matrix=dist.covariance)
    assert torch.allclose(dist.log_prob(x), reference.log_prob(x), atol=1e-10)
    mixture = GaussianMixture(4, seed=2, weight=0.3)
    components = [
        torch.distributions.MultivariateNormal(m, torch.eye(4, dtype=torch.float64))
        for m in (mixture.shift, -mixture.shift)
    ]
    expected = torch.logaddexp(math.log(0.3) + components[0].log_prob(x), math.log(0.7) + components[1].log_prob(x))
    assert torch.allclose(mixture.log_prob(x), expected, atol=1e-10)


def test_sample_moments() -> None:
    g = torch.Generator().manual_seed(0)
    dist = Gaussian(3, generator=g)
    x = dist.sample(50_000, g)
    assert torch.allclose(x.mean(0), dist.mean, atol=0.04)
    assert torch.allclose(torch.cov(x.T), dist.covariance, atol=0.1)
    mixture = GaussianMixture(3, seed=1, weight=0.3)
    y = mixture.sample(50_000, g)
    assert torch.allclose(y.mean(0), (0.3 - 0.7) * mixture.shift, atol=0.04)


def test_deterministic_and_typed() -> None:
    def draw(seed: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return sample_with_score(GaussianMixture(5, generator=g, dtype=dtype), 64, g)

    a, b = draw(0, torch.float32), draw(0, torch.float32)
    assert a[0].dtype == a[1].dtype == torch.float32
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], draw(1, torch.float32)[0])
    assert torch.equal(draw(0, torch.float64)[0].float(), a[0])  # same points in both dtypes


@pytest.mark.parametrize(("dim", "rho"), [(1, 0.3), (5, -0.8), (20, 0.99)])
def test_toy_mi_equals_the_gaussian_closed_form(dim: int, rho: float) -> None:
    # I(x; y) = ½ (log det Σ_x + log det Σ_y − log det Σ_xy) for jointly Gaussian (x, y).
    eye = torch.eye(dim, dtype=torch.float64)
    joint = torch.cat([torch.cat([eye, rho * eye], 1), torch.cat([rho * eye, eye], 1)], 0)
    expected = -0.5 * float(torch.linalg.slogdet(joint).logabsdet)
    assert correlated_gaussian_mi(dim, rho) == pytest.approx(expected, rel=1e-10)
    step = 1e-6
    numeric = (correlated_gaussian_mi(dim, rho + step) - correlated_gaussian_mi(dim, rho - step)) / (2 * step)
    assert correlated_gaussian_mi_grad(dim, rho) == pytest.approx(numeric, rel=1e-6)


def test_toy_samples_have_the_stated_correlation_and_carry_the_rho_gradient() -> None:
    rho = torch.tensor(0.6, requires_grad=True)
    x, y = correlated_gaussians(100_000, 3, rho, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert x.shape == y.shape == (100_000, 3) and y.dtype == torch.float64
    assert float((x * y.detach()).mean()) == pytest.approx(0.6, abs=0.01)
    assert float(y.detach().var(0).mean()) == pytest.approx(1.0, abs=0.01)
    y.sum().backward()
    assert rho.grad is not None and torch.isfinite(rho.grad)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="rho"):
        correlated_gaussians(4, 2, 1.0, torch.Generator())
    with pytest.raises(ValueError, match="weight"):
        GaussianMixture(2, weight=1.0)
    with pytest.raises(ValueError, match="variance_range"):
        Gaussian(2, variance_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="same shape"):
        relative_rmse(torch.zeros(3, 2), torch.zeros(2, 2))


def test_bound_targets_cap_infonce_and_give_jsd_its_divergence() -> None:
    # d = 20, ρ = 0.9: I = 16.6 nats, above InfoNCE's cap log 128 = 4.85.
    assert correlated_gaussian_bound_target("infonce", 20, 0.9, 128, js_samples=10) == math.log(128)
    assert correlated_gaussian_bound_target("infonce", 1, 0.5, 128, js_samples=10) == correlated_gaussian_mi(1, 0.5)
    assert correlated_gaussian_bound_target("mine", 20, 0.9, 128, js_samples=10) == correlated_gaussian_mi(20, 0.9)
    jsd = correlated_gaussian_bound_target("jsd", 2, 0.5, 128, js_samples=20_000)
    assert jsd == correlated_gaussian_two_js(2, 0.5, n=20_000, seed=1234)
