"""CLUB and CLUB-S on correlated Gaussians: above the true MI once q is fitted, at the closed form of the exact q."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

import mireg
from mireg.testing import correlated_gaussian_mi as true_mi
from mireg.testing import correlated_gaussians
from mireg_club import CLUB, CLUBSample


def fitted(name: str, d: int, rho: float, steps: int, seed: int = 0) -> tuple[CLUB, float]:
    """Fit q by its training loss (Adam lr 3e-3, fresh batches of 128, hidden 32); mean estimate over 8 batches."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    mi = mireg.mi_gradient_estimator(name, hidden=32)
    optimizer = torch.optim.Adam(mi.parameters(), lr=3e-3)
    for _ in range(steps):
        x, y = correlated_gaussians(128, d, rho, generator)
        optimizer.zero_grad(set_to_none=True)
        mi.training_loss(x, y).backward()
        optimizer.step()
    with torch.no_grad():
        values = [float(mi.estimate(*correlated_gaussians(128, d, rho, generator))) for _ in range(8)]
    return mi, sum(values) / len(values)


# With the exact q(y|x) = N(rho x, (1 - rho^2) I), CLUB = d rho^2 / (1 - rho^2) >= I = -(d/2) log(1 - rho^2).
# Measured (seed 0, one thread), fitted value vs that closed form:
#   (d, rho) =     (1, .5)          (5, .5)          (5, .9)
#   club:          0.348 vs 0.333   1.608 vs 1.667   20.36 vs 21.32
#   club-sample:   0.326 vs 0.333   1.633 vs 1.667   19.97 vs 21.32
# Tolerance: 0.1 nats + 10% of the closed form (over twice the measured error in every case).
CASES = [
    (name, d, rho, steps)
    for name in ("club", "club-sample")
    for d, rho, steps in ((1, 0.5, 300), (5, 0.5, 300), (5, 0.9, 600))
]


@pytest.mark.parametrize(("name", "d", "rho", "steps"), CASES)
def test_fitted_club_is_above_the_truth_at_the_exact_q_value(name: str, d: int, rho: float, steps: int) -> None:
    _, value = fitted(name, d, rho, steps)
    exact_q = d * rho * rho / (1 - rho * rho)
    assert value >= true_mi(d, rho)
    assert abs(value - exact_q) <= 0.1 + 0.1 * exact_q, f"{name} d={d} rho={rho}: {value:.3f} vs {exact_q:.3f}"


def test_negative_term_is_the_mean_over_the_other_rows() -> None:
    generator = torch.Generator().manual_seed(3)
    z = torch.randn(7, 3, generator=generator, dtype=torch.float64)
    mean = torch.randn(7, 3, generator=generator, dtype=torch.float64)
    squares = (z.unsqueeze(0) - mean.unsqueeze(1)).pow(2)  # [i, j, k] = (z_jk - mean_ik)^2
    off = ~torch.eye(7, dtype=torch.bool)
    brute = torch.stack([squares[i][off[i]].mean(0) for i in range(7)])
    torch.testing.assert_close(CLUB().negative_squares(z, mean), brute)


def test_sampled_variant_averages_to_the_full_one() -> None:
    # Over all B - 1 shifts the sampled negatives are exactly the off-diagonal pairs.
    generator = torch.Generator().manual_seed(4)
    z = torch.randn(6, 2, generator=generator, dtype=torch.float64)
    mean = torch.randn(6, 2, generator=generator, dtype=torch.float64)
    shifts = torch.stack([(z.roll(-s, dims=0) - mean).pow(2) for s in range(1, 6)]).mean(0)
    torch.testing.assert_close(shifts, CLUB().negative_squares(z, mean))
    torch.manual_seed(0)
    draws = {float(CLUBSample().negative_squares(z, mean).sum()) for _ in range(40)}
    assert draws <= {float(s) for s in torch.stack([(z.roll(-s, dims=0) - mean).pow(2).sum() for s in range(1, 6)])}


def test_training_loss_is_the_gaussian_negative_log_likelihood() -> None:
    torch.manual_seed(0)
    club = CLUB(hidden=8)
    x, z = torch.randn(16, 3), torch.randn(16, 2)
    loss = club.training_loss(x, z)
    mean, log_var = club.q(x, z)
    expected = -Normal(mean, (0.5 * log_var).exp()).log_prob(z).sum(-1).mean()
    torch.testing.assert_close(loss, expected)


def test_value_is_the_bound_formula_and_forward_matches_estimate() -> None:
    torch.manual_seed(0)
    club = CLUB(hidden=8)
    x, z = torch.randn(16, 3), torch.randn(16, 2)
    mean, log_var = club.q(x, z)
    log_q = Normal(mean.unsqueeze(1), (0.5 * log_var).exp().unsqueeze(1)).log_prob(z.unsqueeze(0)).sum(-1)  # [i, j]
    off = ~torch.eye(16, dtype=torch.bool)
    expected = log_q.diagonal().mean() - log_q[off].view(16, 15).mean(1).mean()
    torch.testing.assert_close(club.estimate(x, z), expected)
    torch.testing.assert_close(club(x, z), expected)


def test_lazy_sizes_and_registration() -> None:
    club = mireg.mi_gradient_estimator("club")
    assert isinstance(club, CLUB) and isinstance(mireg.mi_gradient_estimator("club-sample"), CLUBSample)
    assert any(isinstance(p, torch.nn.parameter.UninitializedParameter) for p in club.parameters())
    club.estimate(torch.randn(4, 5), torch.randn(4, 3))
    assert club.q.mean_out.weight.shape == (3, 64) and club.q.mean_body[0].weight.shape == (64, 5)
    assert math.isfinite(float(club.training_loss(torch.randn(4, 5), torch.randn(4, 3)).detach()))
    names = {info.name: info.plugin for info in mireg.list_estimators("mi_gradient")}
    assert names["club"] == names["club-sample"] == "mireg-club"
