"""MIGE against closed forms, with exact or Gaussian-fit scores (no plugin needed).

The toy: x, ε ~ N(0, I_d), y = ρx + sqrt(1−ρ²)ε, I = −(d/2) log(1−ρ²),
dI/dρ = ρd/(1−ρ²). With the exact scores the surrogate gradient is an unbiased estimate.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import GaussianScore
from torch import Tensor
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

import mireg
import mireg.mige
from mireg.api import entropy_surrogate as public_entropy_surrogate
from mireg.errors import NonFiniteError, OptionError
from mireg.mige import MIGE, entropy_surrogate, gaussian_mixture_gradients, preconditioned_score, stein_calibrate
from mireg.projection import random_projection
from mireg.testing import correlated_gaussian_mi_grad, correlated_gaussians


class ExactToyScore(mireg.ScoreEstimator):
    """Exact scores of the toy's densities, told apart by width: N(0, I_d) and the joint."""

    name = "exact-toy"

    def __init__(self, rho: float, d: int) -> None:
        eye = torch.eye(d, dtype=torch.float64)
        joint = torch.cat([torch.cat([eye, rho * eye], 1), torch.cat([rho * eye, eye], 1)], 0)
        self.precision = {d: eye, 2 * d: torch.linalg.inv(joint)}
        self.widths: list[int] = []

    def _score(self, samples: Tensor, at: Tensor | None) -> Tensor:
        self.widths.append(samples.shape[1])
        return -samples @ self.precision[samples.shape[1]].to(samples.dtype)


@pytest.mark.parametrize(("rho", "d"), [(0.5, 5), (0.9, 5), (-0.8, 3)])
def test_exact_scores_give_an_unbiased_gradient(rho: float, d: int) -> None:
    estimator = ExactToyScore(rho, d)
    mi = MIGE(score=estimator, precondition="none")
    generator = torch.Generator().manual_seed(0)
    grads = []
    for _ in range(40):
        r = torch.tensor(rho, dtype=torch.float64, requires_grad=True)
        x, y = correlated_gaussians(512, d, r, generator, dtype=torch.float64)
        mi(x, y).backward()
        grads.append(float(r.grad))
    truth = correlated_gaussian_mi_grad(d, rho)
    mean = sum(grads) / len(grads)
    # 40 batches of 512: the Monte Carlo error of the mean is below 2% of the truth here.
    assert mean == pytest.approx(truth, rel=0.03)
    assert set(estimator.widths) == {d, 2 * d}  # H(x) was skipped: x needs no gradient


def test_surrogate_gradient_is_the_score_difference() -> None:
    d, m = 3, 64
    estimator = ExactToyScore(0.6, d)
    x = torch.randn(m, d, dtype=torch.float64)
    z = torch.randn(m, d, dtype=torch.float64, requires_grad=True)
    MIGE(score=estimator, precondition="none", calibrate="none")(x, z).backward()
    joint = torch.cat([x, z.detach()], 1)
    expected = (-estimator.score(z.detach()) + estimator.score(joint)[:, d:]) / m
    torch.testing.assert_close(z.grad, expected, rtol=1e-12, atol=1e-12)


def test_two_sided_gradient_uses_all_three_terms() -> None:
    d, m = 2, 32
    estimator = ExactToyScore(0.3, d)
    a = torch.randn(m, d, dtype=torch.float64, requires_grad=True)
    b = torch.randn(m, d, dtype=torch.float64, requires_grad=True)
    MIGE(score=estimator, precondition="none", calibrate="none")(a, b).backward()
    joint_score = estimator.score(torch.cat([a, b], 1).detach())
    torch.testing.assert_close(a.grad, (-estimator.score(a.detach()) + joint_score[:, :d]) / m)
    torch.testing.assert_close(b.grad, (-estimator.score(b.detach()) + joint_score[:, d:]) / m)


def test_no_gradient_anywhere_is_refused_with_grad_mode_on_and_zero_without() -> None:
    estimator = ExactToyScore(0.3, 2)
    z = torch.randn(8, 2, requires_grad=True)
    with pytest.raises(ValueError, match=r"pass the z that carries the encoder's graph \(not z.detach\(\)\)"):
        MIGE(score=estimator)(torch.randn(8, 2), z.detach())
    with torch.no_grad():  # evaluation: no gradient wanted, a constant 0
        out = MIGE(score=estimator)(torch.randn(8, 2), z.detach())
    assert float(out) == 0.0 and estimator.widths == []


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_whitening_is_exact_for_an_affine_equivariant_estimator(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(1)
    mixing = torch.tensor([[3.0, 0.0, 0.0], [2.5, 1.0, 0.0], [0.5, -1.0, 0.3]], dtype=dtype)
    samples = torch.randn(200, 3, generator=generator, dtype=dtype) @ mixing.T + 5.0
    raw = preconditioned_score(GaussianScore(), samples, precondition="none")
    for mode in ("full", "diag"):
        white = preconditioned_score(GaussianScore(), samples, precondition=mode, shrinkage=0.0)
        torch.testing.assert_close(white, raw, rtol=2e-3 if dtype == torch.float32 else 1e-9, atol=1e-3)


def test_entropy_gradient_of_a_linear_map_is_the_inverse_transpose() -> None:
    # z = ε Aᵀ with ε ~ N(0, I): H(z) = log|det A| + const, so ∇_A H = A^{-T}.
    generator = torch.Generator().manual_seed(2)
    a = torch.tensor([[1.5, 0.2, 0.0], [0.3, 0.7, 0.1], [0.0, -0.4, 2.0]], dtype=torch.float64)
    grads = []
    for _ in range(20):
        matrix = a.clone().requires_grad_(True)
        z = torch.randn(1000, 3, generator=generator, dtype=torch.float64) @ matrix.T
        entropy_surrogate(z, GaussianScore()).backward()
        grads.append(matrix.grad)
    mean = torch.stack(grads).mean(0)
    torch.testing.assert_close(mean, torch.linalg.inv(a).T, rtol=0.0, atol=0.03)


def test_stochastic_encoder_uses_the_analytic_conditional() -> None:
    m, d = 64, 2
    mu = torch.randn(m, d, dtype=torch.float64, requires_grad=True)
    log_var = torch.randn(m, d, dtype=torch.float64, requires_grad=True)
    eps = torch.randn(m, d, dtype=torch.float64)
    z = mu + (0.5 * log_var).exp() * eps
    mi = MIGE(score=GaussianScore(), precondition="none")
    mi(torch.randn(m, 4, dtype=torch.float64), z, log_var=log_var).backward()
    expected_mu_grad, expected_lv_grad = torch.autograd.grad(
        entropy_surrogate(mu + (0.5 * log_var).exp() * eps, GaussianScore(), precondition="none")
        - 0.5 * log_var.sum(-1).mean(),
        [mu, log_var],
    )
    torch.testing.assert_close(mu.grad, expected_mu_grad)
    torch.testing.assert_close(log_var.grad, expected_lv_grad)


def _mixture(mean: Tensor, log_var: Tensor) -> MixtureSameFamily:
    """(1/M) Σ_j N(μ_j, diag σ_j²) for ``mean``, ``log_var`` ``[M, d]``, by torch.distributions."""
    weights = Categorical(torch.ones(mean.shape[0], dtype=mean.dtype))
    return MixtureSameFamily(weights, Independent(Normal(mean, (0.5 * log_var).exp()), 1))


def _encoder_batch(m: int, d: int, spread: float, log_var: float, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Leaf ``mean`` (rows spread·N(0, I)) and ``log_var`` (all ``log_var``) ``[m, d]`` and the noise ε, float64."""
    generator = torch.Generator().manual_seed(seed)
    mean = (spread * torch.randn(m, d, generator=generator, dtype=torch.float64)).requires_grad_()
    variance = torch.full((m, d), log_var, dtype=torch.float64, requires_grad=True)
    return mean, variance, torch.randn(m, d, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize("block", [mireg.mige.MIXTURE_BLOCK, 3 * 7 * 3])  # one block; blocks of 3 rows
def test_mixture_gradients_are_autograd_of_the_mixture_log_density(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mireg.mige, "MIXTURE_BLOCK", block)
    generator = torch.Generator().manual_seed(11)
    mean = torch.randn(7, 3, generator=generator, dtype=torch.float64).requires_grad_()
    log_var = torch.randn(7, 3, generator=generator, dtype=torch.float64).requires_grad_()
    z = (mean + (0.5 * log_var).exp() * torch.randn(7, 3, generator=generator, dtype=torch.float64)).detach()
    z.requires_grad_()
    expected = torch.autograd.grad(_mixture(mean, log_var).log_prob(z).sum(), [z, mean, log_var])
    for got, want in zip(gaussian_mixture_gradients(z, mean, log_var), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_mige_with_means_differentiates_the_mixture_entropy_minus_the_conditional() -> None:
    # The surrogate's gradient is that of −mean_i log q̂(z_i) − mean_i Σ_k log σ_ik, z_i = μ_i + σ_i ε_i.
    mean, log_var, eps = _encoder_batch(9, 4, 1.0, -1.0, seed=12)
    with torch.no_grad():
        log_var += 0.5 * torch.randn(9, 4, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    z = mean + (0.5 * log_var).exp() * eps
    got = torch.autograd.grad(
        MIGE(score=GaussianScore())(z, z, mean=mean, log_var=log_var), [mean, log_var], retain_graph=True
    )
    mixture_information = -_mixture(mean, log_var).log_prob(z).mean() - 0.5 * log_var.sum(-1).mean()
    for g, want in zip(got, torch.autograd.grad(mixture_information, [mean, log_var]), strict=True):
        torch.testing.assert_close(g, want, rtol=0, atol=1e-12)


def test_equal_components_give_the_gaussian_closed_form() -> None:
    # All μ_j and σ_j equal: q̂ = N(μ, σ²), w_ij = 1/M, and per row k (exact for every draw of ε)
    #   ∂Î/∂μ_k = (ε_k − ε̄)/(σ M),   ∂Î/∂log σ_k² = (ε_k² − mean_i ε_i²)/(2M),
    # whose sums over the rows are 0: H(N(μ, σ²)) − Σ log σ is invariant to a common shift and scale.
    m, d = 32, 5
    mean, log_var, eps = _encoder_batch(m, d, 0.0, -2.0, seed=14)
    with torch.no_grad():
        mean += 0.7
    z = mean + (0.5 * log_var).exp() * eps
    grad_mean, grad_log_var = torch.autograd.grad(
        MIGE(score=GaussianScore())(z, z, mean=mean, log_var=log_var), [mean, log_var]
    )
    sigma = math.exp(-1.0)
    torch.testing.assert_close(grad_mean, (eps - eps.mean(0)) / (sigma * m), rtol=0, atol=1e-12)
    torch.testing.assert_close(grad_log_var, (eps**2 - (eps**2).mean(0)) / (2 * m), rtol=0, atol=1e-12)


def test_separated_components_saturate_and_give_no_gradient() -> None:
    # σ = 1e-4 against means 10 apart: q̂(z_i) is its own component's density over M, Î = log M, and the
    # 1/σ-sized sample and component terms (each ~ |ε|/(σM) ≈ 300) cancel to rounding.
    mean, log_var, eps = _encoder_batch(16, 4, 10.0, 2 * math.log(1e-4), seed=15)
    z = mean + (0.5 * log_var).exp() * eps
    mi = MIGE(score=GaussianScore())
    grads = torch.autograd.grad(mi(z, z, mean=mean, log_var=log_var), [mean, log_var])
    for grad in grads:
        torch.testing.assert_close(grad, torch.zeros_like(grad), rtol=0, atol=1e-9)
    score, _, _ = gaussian_mixture_gradients(z, mean, log_var)  # the sample term alone: −ε/σ
    torch.testing.assert_close(score, -eps / 1e-4, rtol=1e-9, atol=0)


def test_marginal_score_ignores_the_means_and_bad_means_are_refused() -> None:
    mean, log_var, eps = _encoder_batch(16, 3, 1.0, -1.0, seed=16)
    z = mean + (0.5 * log_var).exp() * eps
    by_score = MIGE(score=GaussianScore(), marginal="score")
    with_mean = torch.autograd.grad(by_score(z, z, mean=mean, log_var=log_var), [mean, log_var], retain_graph=True)
    without = torch.autograd.grad(by_score(z, z, log_var=log_var), [mean, log_var])
    for a, b in zip(with_mean, without, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    mi = MIGE(score=GaussianScore())
    with pytest.raises(ValueError, match="mean .* needs the encoder's log-variances"):
        mi(z, z, mean=mean)
    with pytest.raises(ValueError, match="mean must have the shape of z"):
        mi(z, z, mean=mean[:, :2], log_var=log_var)
    bad = mean.detach().clone()
    bad[3, 1] = float("inf")
    with pytest.raises(NonFiniteError, match="mean contains 1 NaN/Inf"):
        mi(z, z, mean=bad, log_var=log_var)
    with pytest.raises(OptionError, match="marginal"):
        MIGE(score=GaussianScore(), marginal="kde")  # type: ignore[arg-type]


def test_conditional_score_form_matches_the_analytic_form_in_expectation() -> None:
    # For a Gaussian encoder, s(z|x) = −ε/σ gives the same expected gradient as the log σ form.
    generator = torch.Generator().manual_seed(3)
    m, d = 4096, 2
    log_var = torch.full((m, d), -1.0, dtype=torch.float64, requires_grad=True)
    eps = torch.randn(m, d, generator=generator, dtype=torch.float64)
    sigma = (0.5 * log_var).exp()
    z = 2.0 + sigma * eps
    mi = MIGE(score=GaussianScore(), precondition="none")
    (g_score,) = torch.autograd.grad(mi(z, z, conditional_score=-eps / sigma.detach()), [log_var], retain_graph=True)
    (g_analytic,) = torch.autograd.grad(mi(z, z, log_var=log_var), [log_var])
    # The two differ only in the conditional term, whose analytic gradient sums to d/2 = 1.
    assert abs(float(g_score.sum()) - float(g_analytic.sum())) < 0.05


def test_projection_has_unit_columns_and_is_fixed_on_request() -> None:
    matrix = random_projection(300, 16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(matrix.norm(dim=0), torch.ones(300))
    estimator = ExactToyScore(0.0, 16)
    fixed = MIGE(score=GaussianScore(), projection_dim=16, fixed_projection=True, seed=4)
    x = torch.randn(64, 300)
    first = fixed._project(x)
    torch.testing.assert_close(fixed._project(x), first)
    fresh = MIGE(score=estimator, projection_dim=16)
    assert not torch.allclose(fresh._project(x), fresh._project(x))
    assert fresh._project(torch.randn(64, 8)).shape == (64, 8)  # narrower than k: unchanged


def test_bad_inputs_and_options() -> None:
    mi = MIGE(score=GaussianScore(), value_score=None)  # the core has no Stein plugin for values
    with pytest.raises(ValueError, match="x contains 1 NaN/Inf"):
        mi(torch.tensor([[float("nan")], [1.0]]), torch.randn(2, 1))
    with pytest.raises(ValueError, match="log_var contains 1 NaN/Inf"):
        mi(torch.randn(4, 2), torch.randn(4, 2), log_var=torch.tensor([[0.0, float("nan")]] + [[0.0, 0.0]] * 3))
    with pytest.raises(ValueError, match="log_var must have the shape of z"):
        mi(torch.randn(4, 2), torch.randn(4, 2), log_var=torch.randn(4, 3))
    with pytest.raises(ValueError, match="score_options apply only when `score` is a name"):
        MIGE(score=GaussianScore(), score_options={"ridge": 1.0})
    with pytest.raises(ValueError, match="shrinkage must be in"):
        MIGE(score=GaussianScore(), shrinkage=1.5)
    with pytest.raises(ValueError, match=r"heat-flow MI needs M >= 3 \(dx \+ dy\) \+ 2"):
        mi.estimate(torch.randn(4, 2), torch.randn(4, 2))
    assert mireg.entropy_surrogate is public_entropy_surrogate  # the name-taking public function


def test_calibration_restores_steins_identity_for_affine_test_functions() -> None:
    generator = torch.Generator().manual_seed(5)
    m, d = 400, 6
    samples = torch.randn(m, d, generator=generator, dtype=torch.float64)
    centred = samples - samples.mean(0)
    shrunk = -0.7 * centred + 0.3 + 0.05 * torch.randn(m, d, generator=generator, dtype=torch.float64)
    scaled = stein_calibrate(shrunk, centred, "scale")
    torch.testing.assert_close(scaled.mean(0), torch.zeros(d, dtype=torch.float64), atol=1e-12, rtol=0)
    assert float(-(centred * scaled).sum(1).mean() / d) == pytest.approx(1.0, abs=1e-12)
    affine = stein_calibrate(shrunk, centred, "affine")
    moment = -(centred.T @ affine) / m
    # G is shrunk towards its mean diagonal by d/(d+M) = 0.015 before inversion: close to I.
    torch.testing.assert_close(moment, torch.eye(d, dtype=torch.float64), atol=0.02, rtol=0)
    assert stein_calibrate(shrunk, centred, "none") is shrunk


def test_calibration_makes_a_shrunk_gaussian_score_exact() -> None:
    generator = torch.Generator().manual_seed(6)
    samples = torch.randn(2000, 3, generator=generator, dtype=torch.float64)
    raw = preconditioned_score(GaussianScore(), samples, precondition="none")
    shrunk = ShrinkingScore(0.6)
    fixed = preconditioned_score(shrunk, samples, precondition="full", calibrate="affine")
    torch.testing.assert_close(fixed, raw, rtol=0, atol=0.02)


def test_calibration_refuses_an_anticorrelated_estimate() -> None:
    samples = torch.randn(50, 2)
    with pytest.raises(ValueError, match="cannot be calibrated"):
        stein_calibrate(samples - samples.mean(0), samples - samples.mean(0))


class ShrinkingScore(GaussianScore):
    """The Gaussian-fit score multiplied by a factor: a biased estimator to calibrate."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def _score(self, samples: Tensor, at: Tensor | None) -> Tensor:
        return self.factor * super()._score(samples, at)
