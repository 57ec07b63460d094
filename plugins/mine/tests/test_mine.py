"""MINE and MINE-f (NWJ) against the closed-form MI of correlated Gaussians, plus the contract."""

from __future__ import annotations

import math

import pytest
import torch

import mireg
from mireg.testing import correlated_gaussian_mi as true_mi
from mireg.testing import correlated_gaussians
from mireg.testing import train_mi_estimator as train
from mireg_mine import MINE, MINEf

# Budget: Adam lr 1e-3, batch 128, the default concat critic (1 hidden layer) at hidden=64; the value is
# the mean of `estimate` over 8 fresh batches. STEPS[(d, rho)] steps; truth I = -(d/2) log(1 - rho^2).
STEPS = {(1, 0.5): 400, (1, 0.9): 400, (5, 0.5): 600, (5, 0.9): 1000}
# Measured (seed 0, one thread; mireg.testing.train_mi_estimator), estimate vs truth:
#   (d, rho) =  (1, .5)          (1, .9)          (5, .5)          (5, .9)
#   mine:       0.156 vs 0.144   0.812 vs 0.830   0.677 vs 0.719   4.132 vs 4.152
#   mine-f:     0.154 vs 0.144   0.789 vs 0.830   0.670 vs 0.719   4.096 vs 4.152
# Tolerance: 0.08 nats + 10% of I (at least three times the measured error in every case).
CASES = [(name, d, rho) for name in ("mine", "mine-f") for d in (1, 5) for rho in (0.5, 0.9)]


@pytest.mark.parametrize(("name", "d", "rho"), CASES)
def test_estimate_close_to_true_mi(name: str, d: int, rho: float) -> None:
    _, value = train(name, d, rho, steps=STEPS[(d, rho)], hidden=64)
    truth = true_mi(d, rho)
    assert abs(value - truth) <= 0.08 + 0.10 * truth, f"{name} d={d} rho={rho}: {value:.3f} vs I = {truth:.3f}"


@pytest.mark.parametrize("name", ["mine", "mine-f"])
def test_same_seed_gives_identical_estimates(name: str) -> None:
    first = train(name, 3, 0.7, steps=30, hidden=32, seed=5)[1]
    second = train(name, 3, 0.7, steps=30, hidden=32, seed=5)[1]
    other = train(name, 3, 0.7, steps=30, hidden=32, seed=6)[1]
    assert first == second
    assert first != other


def test_nwj_alias_resolves_to_mine_f() -> None:
    assert isinstance(mireg.mi_gradient_estimator("nwj"), MINEf)
    assert isinstance(mireg.mi_gradient_estimator("mine-f", hidden=8), MINEf)
    assert isinstance(mireg.mi_gradient_estimator("mine", ema_rate=0.1), MINE)
    names = {info.name: info for info in mireg.list_estimators("mi_gradient")}
    assert names["mine"].plugin == "mireg-mine"
    assert names["mine-f"].aliases == ("nwj",)


def test_unknown_or_ill_typed_option_raises_option_error() -> None:
    with pytest.raises(mireg.OptionError, match="ema_rat"):
        mireg.mi_gradient_estimator("mine", ema_rat=0.1)
    with pytest.raises(mireg.OptionError, match="hidden"):
        mireg.mi_gradient_estimator("nwj", hidden="wide")
    with pytest.raises(mireg.OptionError, match="critic"):
        mireg.mi_gradient_estimator("mine", critic="bilinear")


def test_bad_option_values_raise_value_error() -> None:
    with pytest.raises(ValueError, match=r"ema_rate must be in \(0, 1\]"):
        MINE(ema_rate=0.0)
    with pytest.raises(ValueError, match="x_dim must be a positive integer"):
        MINEf(x_dim=0)
    with pytest.raises(ValueError, match="layers >= 1"):
        MINE(critic="concat", layers=0)
    with pytest.raises(ValueError, match="negatives must be a positive integer"):
        MINEf(negatives=-3)


@pytest.mark.parametrize("name", ["mine", "mine-f"])
def test_fewer_negatives_still_estimate_the_bound(name: str) -> None:
    # 32 shifted negatives per row instead of all 127 (measured: mine 0.664, mine-f 0.656 vs I = 0.719).
    _, value = train(name, 5, 0.5, steps=600, hidden=64, negatives=32)
    assert abs(value - true_mi(5, 0.5)) <= 0.08 + 0.10 * true_mi(5, 0.5)


@pytest.mark.parametrize("name", ["mine", "mine-f"])
@pytest.mark.parametrize("method", ["__call__", "estimate"])  # mi(x, z) and mi.estimate(x, z)
def test_bad_input_raises_value_error(name: str, method: str) -> None:
    mi = mireg.mi_gradient_estimator(name, hidden=8)
    call = getattr(mi, method)
    with pytest.raises(ValueError, match="same number of samples"):
        call(torch.randn(8, 3), torch.randn(7, 3))
    with pytest.raises(ValueError, match="at least 2"):
        call(torch.randn(1, 3), torch.randn(1, 3))
    bad = torch.randn(8, 3)
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        call(bad, torch.randn(8, 3))


def test_state_dict_round_trip_keeps_the_moving_average() -> None:
    mi, _ = train("mine", 2, 0.8, steps=25, hidden=16, eval_batches=1)
    state = mi.state_dict()
    assert int(state["ema_steps"]) == 25
    restored = MINE(hidden=16)  # lazy critic: loading the state materialises it
    restored.load_state_dict(state)
    assert torch.equal(restored.log_ema, mi.log_ema)
    assert int(restored.ema_steps) == 25
    x, z = correlated_gaussians(64, 2, 0.8, torch.Generator().manual_seed(3))
    assert torch.equal(restored(x, z), mi(x, z))  # the same value and the EMA updated alike
    assert torch.equal(restored.log_ema, mi.log_ema)


def test_moving_average_follows_its_definition() -> None:
    mi = MINE(hidden=8, ema_rate=0.25)
    generator = torch.Generator().manual_seed(0)
    batches = [correlated_gaussians(16, 3, 0.5, generator) for _ in range(3)]
    means = []
    for x, z in batches:
        mi(x, z)
        with torch.no_grad():
            scores = mi.critic_net(x, z)
        off = scores[~torch.eye(16, dtype=torch.bool)]
        means.append(float(off.exp().mean()))
    expected = means[0]
    for value in means[1:]:
        expected = 0.75 * expected + 0.25 * value
    assert math.isclose(float(mi.log_ema.exp()), expected, rel_tol=1e-5)
    # Evaluation (no_grad or eval mode) leaves the average alone.
    with torch.no_grad():
        mi(*batches[0])
    mi.eval()
    mi(*batches[0])
    assert int(mi.ema_steps) == 3


def test_forward_value_is_the_dv_bound_and_its_gradient_is_bias_corrected() -> None:
    torch.manual_seed(0)
    x, z = correlated_gaussians(32, 3, 0.6, torch.Generator().manual_seed(1))
    plain = MINE(hidden=16, ema_rate=1.0)  # rate 1: the average is the batch itself, plain DV gradient
    value = plain(x, z)
    assert torch.allclose(value, plain.estimate(x, z))
    value.backward()
    grads = [p.grad.clone() for p in plain.parameters()]
    plain.zero_grad()
    plain.estimate(x, z).backward()
    for mine_grad, p in zip(grads, plain.parameters(), strict=True):
        assert torch.allclose(mine_grad, p.grad, atol=1e-6)
    # A stale average twice the batch mean halves the marginal term's gradient (eval: no update).
    corrected = MINE(hidden=16)
    corrected.load_state_dict(plain.state_dict())
    corrected.eval()
    with torch.no_grad():
        log_mean = float(_log_mean_exp_off_diagonal(corrected.critic_net(x, z)))
    corrected.log_ema.fill_(log_mean + math.log(2.0))
    value = corrected(x, z)
    assert torch.allclose(value, corrected.estimate(x, z))
    value.backward()
    got = [p.grad.clone() for p in corrected.parameters()]
    corrected.zero_grad()
    _dv_weighted(corrected, x, z, 0.5).backward()
    for mine_grad, p in zip(got, corrected.parameters(), strict=True):
        assert torch.allclose(mine_grad, p.grad, atol=1e-6)


def test_forward_is_differentiable_in_x_and_z() -> None:
    """The MI toy differentiates a trained critic's bound w.r.t. rho through reparameterised samples."""
    for name in ("mine", "mine-f"):
        mi = mireg.mi_gradient_estimator(name, hidden=16)
        rho = torch.tensor(0.5, requires_grad=True)
        generator = torch.Generator().manual_seed(0)
        x, eps = torch.randn(32, 2, generator=generator), torch.randn(32, 2, generator=generator)
        mi(x, rho * x + torch.sqrt(1 - rho**2) * eps).backward()
        assert rho.grad is not None and torch.isfinite(rho.grad) and rho.grad != 0


def _log_mean_exp_off_diagonal(scores: torch.Tensor) -> torch.Tensor:
    n = scores.shape[0]
    return torch.logsumexp(scores[~torch.eye(n, dtype=torch.bool)], 0) - math.log(n * (n - 1))


def _dv_weighted(mi: MINE, x: torch.Tensor, z: torch.Tensor, weight: float) -> torch.Tensor:
    """mean T_ii - weight * log mean_{i≠j} exp T_ij: its gradient is MINE's with average = batch mean / weight."""
    scores = mi.critic_net(x, z)
    return scores.diagonal().mean() - weight * _log_mean_exp_off_diagonal(scores)
