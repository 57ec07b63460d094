"""SMILE: the clip of its value, its JS-objective gradient, and the closed-form MI of correlated Gaussians."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional

import mireg
from mireg.testing import correlated_gaussian_mi as true_mi
from mireg.testing import correlated_gaussians
from mireg.testing import train_mi_estimator as train
from mireg_mine import SMILE

# Budget as in test_mine.py: Adam lr 1e-3, batch 128, concat critic 1x64, tau 5; mean of `estimate` over 8
# fresh batches. Measured (seed 0, one thread), estimate vs truth:
#   (d, rho) = (1, .5): 0.155 vs 0.144   (5, .5): 0.676 vs 0.719   (5, .9): 4.164 vs 4.152
# Tolerance: 0.08 nats + 10% of I (over three times the measured error in every case).
CASES = [(1, 0.5, 400), (5, 0.5, 600), (5, 0.9, 1000)]


@pytest.mark.parametrize(("d", "rho", "steps"), CASES)
def test_estimate_close_to_true_mi(d: int, rho: float, steps: int) -> None:
    _, value = train("smile", d, rho, steps=steps, hidden=64)
    truth = true_mi(d, rho)
    assert abs(value - truth) <= 0.08 + 0.10 * truth, f"smile d={d} rho={rho}: {value:.3f} vs I = {truth:.3f}"


def test_value_respects_its_clip() -> None:
    # log mean clip(e^T, e^-tau, e^tau) lies in [-tau, tau], so the value lies within tau of mean T(joint):
    # negatives all above tau give exactly mean(joint) - tau, all below -tau exactly mean(joint) + tau.
    smile = SMILE(tau=2.0)
    joint = torch.tensor([1.0, 3.0, 5.0])
    assert float(smile.bound(joint, torch.full((3, 2), 40.0))) == pytest.approx(3.0 - 2.0)
    assert float(smile.bound(joint, torch.full((3, 2), -40.0))) == pytest.approx(3.0 + 2.0)
    assert float(SMILE(tau=None).bound(joint, torch.full((3, 2), 40.0))) == pytest.approx(3.0 - 40.0)
    mixed = torch.tensor([[40.0, -40.0], [0.0, 1.0], [-1.0, 1.5]])
    expected = 3.0 - math.log((math.exp(2.0) + math.exp(-2.0) + 1.0 + math.e + math.exp(-1.0) + math.exp(1.5)) / 6)
    assert float(smile.bound(joint, mixed)) == pytest.approx(expected)


def test_value_of_a_wild_critic_stays_within_tau_of_the_joint_scores() -> None:
    torch.manual_seed(0)
    smile = SMILE(tau=5.0, hidden=16, x_dim=3, z_dim=3)
    with torch.no_grad():
        for parameter in smile.parameters():
            parameter.mul_(30.0)  # scores of hundreds
    x, z = correlated_gaussians(64, 3, 0.5, torch.Generator().manual_seed(1))
    joint, negative = smile.scores(x, z)
    assert negative.abs().max() > 50
    value = float(smile.estimate(x, z).detach())
    assert float(joint.mean().detach()) - 5.0 - 1e-4 <= value <= float(joint.mean().detach()) + 5.0 + 1e-4


def test_forward_has_the_value_and_the_gradient_of_the_js_objective() -> None:
    torch.manual_seed(0)
    smile = SMILE(hidden=16, x_dim=2, z_dim=2)
    x, z = correlated_gaussians(32, 2, 0.7, torch.Generator().manual_seed(2))
    out = smile(x, z)
    assert float(out.detach()) == pytest.approx(float(smile.estimate(x, z).detach()), abs=1e-6)
    grads = torch.autograd.grad(out, list(smile.parameters()))
    joint, negative = smile.scores(x, z)
    js = -functional.softplus(-joint).mean() - functional.softplus(negative).mean()
    for got, want in zip(grads, torch.autograd.grad(js, list(smile.parameters())), strict=True):
        torch.testing.assert_close(got, want)


def test_registered_with_tau_option() -> None:
    assert isinstance(mireg.mi_gradient_estimator("smile", tau=1.0), SMILE)
    assert mireg.mi_gradient_estimator("smile").options()["tau"] == 5.0
    with pytest.raises(mireg.OptionError, match="tau must be > 0"):
        mireg.mi_gradient_estimator("smile", tau=-1.0)
