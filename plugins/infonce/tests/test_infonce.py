"""InfoNCE and DIM's JSD estimator on correlated Gaussians with known MI, plus the contract."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import optimal_infonce

import mireg
from mireg.testing import correlated_gaussian_two_js as true_two_jsd
from mireg.testing import correlated_gaussians
from mireg.testing import train_mi_estimator as train
from mireg_infonce import JSD, InfoNCE

# Budget: Adam lr 1e-3, batch 128, separable critic (2 hidden layers, embed 32) at hidden=64; the
# value is the mean of `estimate` over 8 fresh batches after STEPS[(d, rho)] steps.
STEPS = {(1, 0.5): 400, (1, 0.9): 400, (5, 0.5): 600, (5, 0.9): 1500}
# infonce targets its value under the optimal critic at B = 128 (conftest.optimal_infonce), which is
# "min(I, log B)-ish": 0.148 / 0.829 / 0.709 / 3.574 for I = 0.144 / 0.830 / 0.719 / 4.152 (d=1 rho=.5,
# d=1 rho=.9, d=5 rho=.5, d=5 rho=.9); near log 128 = 4.85 even the optimal critic falls short of I.
# jsd targets 2·JS(p(x,z) || p(x)p(z)) (Monte Carlo, mireg.testing.correlated_gaussian_two_js), NOT I.
# Measured (seed 0, one thread; mireg.testing.train_mi_estimator), estimate vs target (error <= 1/3 of tolerance):
#   infonce: 0.157 vs 0.148; 0.832 vs 0.829; 0.673 vs 0.709; 3.509 vs 3.574
#   jsd:     0.082 vs 0.073; 0.430 vs 0.428; 0.316 vs 0.325; 1.152 vs 1.170
TOLERANCE = {"infonce": (0.05, 0.10), "jsd": (0.05, 0.10)}  # absolute + relative to the target
CASES = [(name, d, rho) for name in ("infonce", "jsd") for d in (1, 5) for rho in (0.5, 0.9)]


@pytest.mark.parametrize(("name", "d", "rho"), CASES)
def test_estimate_close_to_its_target(name: str, d: int, rho: float) -> None:
    _, value = train(name, d, rho, steps=STEPS[(d, rho)], hidden=64)
    target = optimal_infonce(d, rho) if name == "infonce" else true_two_jsd(d, rho)
    absolute, relative = TOLERANCE[name]
    assert abs(value - target) <= absolute + relative * target, f"{name} d={d} rho={rho}: {value:.3f} vs {target:.3f}"


def test_infonce_never_exceeds_log_batch() -> None:
    # I = 20 * 1.96 = 39 nats, far above log B: the bound saturates below log B.
    mi, value = train("infonce", 20, 0.99, steps=300, batch=32, hidden=64)
    assert value <= math.log(32)
    assert value > math.log(32) - 1.0
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(20):
            assert float(mi.estimate(*correlated_gaussians(32, 20, 0.99, generator))) <= math.log(32)
    # Even a critic that is infinitely sure only reaches log B.
    perfect = InfoNCE(hidden=4)
    perfect.critic_net = _Fixed(torch.eye(16) * 1e4)
    assert float(perfect(torch.zeros(16, 1), torch.zeros(16, 1))) == pytest.approx(math.log(16), abs=1e-5)


def test_infonce_with_k_negatives_never_exceeds_log_k_plus_one() -> None:
    _, value = train("infonce", 20, 0.99, steps=200, batch=32, hidden=32, negatives=7)
    assert math.log(8) - 0.5 < value <= math.log(8)
    with pytest.raises(ValueError, match="negatives must be a positive integer"):
        InfoNCE(negatives=0)


class _Fixed(torch.nn.Module):
    """A critic returning the given ``[B, B]`` scores."""

    def __init__(self, scores: torch.Tensor) -> None:
        super().__init__()
        self.scores = scores

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.scores


def test_jsd_value_is_dims_and_within_its_range() -> None:
    x, z = correlated_gaussians(16, 3, 0.5, torch.Generator().manual_seed(0))
    mi = JSD(hidden=16)
    scores = mi.critic_net(x, z)
    off = scores[~torch.eye(16, dtype=torch.bool)]
    positive = (math.log(2) - torch.nn.functional.softplus(-scores.diagonal())).mean()  # DIM's E_pos
    negative = (torch.nn.functional.softplus(-off) + off - math.log(2)).mean()  # DIM's E_neg
    assert torch.allclose(mi.estimate(x, z), positive - negative, atol=1e-6)
    mi.critic_net = _Fixed(torch.eye(16) * 200 - 100)
    assert float(mi(x, z)) == pytest.approx(2 * math.log(2), abs=1e-5)
    mi.critic_net = _Fixed(torch.full((16, 16), 0.0))
    assert float(mi(x, z)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("name", ["infonce", "jsd"])
def test_same_seed_gives_identical_estimates(name: str) -> None:
    first = train(name, 3, 0.7, steps=30, hidden=32, seed=5)[1]
    second = train(name, 3, 0.7, steps=30, hidden=32, seed=5)[1]
    other = train(name, 3, 0.7, steps=30, hidden=32, seed=6)[1]
    assert first == second
    assert first != other


def test_registry_and_options() -> None:
    assert isinstance(mireg.mi_gradient_estimator("infonce", critic="concat", hidden=8), InfoNCE)
    assert isinstance(mireg.mi_gradient_estimator("JSD"), JSD)
    assert {"infonce", "jsd"} <= {info.name for info in mireg.list_estimators("mi_gradient")}
    with pytest.raises(mireg.OptionError, match="embed_dm"):
        mireg.mi_gradient_estimator("infonce", embed_dm=8)
    with pytest.raises(mireg.OptionError, match="activation"):
        mireg.mi_gradient_estimator("jsd", activation="swish")


@pytest.mark.parametrize("name", ["infonce", "jsd"])
@pytest.mark.parametrize("method", ["__call__", "estimate"])  # mi(x, z) and mi.estimate(x, z)
def test_bad_input_raises_value_error(name: str, method: str) -> None:
    call = getattr(mireg.mi_gradient_estimator(name, hidden=8), method)
    with pytest.raises(ValueError, match="same number of samples"):
        call(torch.randn(8, 3), torch.randn(9, 3))
    with pytest.raises(ValueError, match="at least 2"):
        call(torch.randn(1, 3), torch.randn(1, 3))
    bad = torch.randn(8, 3)
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        call(torch.randn(8, 3), bad)


@pytest.mark.parametrize("name", ["infonce", "jsd"])
def test_forward_is_differentiable_in_x_and_z(name: str) -> None:
    mi = mireg.mi_gradient_estimator(name, hidden=16)
    rho = torch.tensor(0.5, requires_grad=True)
    generator = torch.Generator().manual_seed(0)
    x, eps = torch.randn(32, 2, generator=generator), torch.randn(32, 2, generator=generator)
    mi(x, rho * x + torch.sqrt(1 - rho**2) * eps).backward()
    assert rho.grad is not None and torch.isfinite(rho.grad) and rho.grad != 0
