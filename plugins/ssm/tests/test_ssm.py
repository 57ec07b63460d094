"""Tests of the ssm score estimator: closed-form accuracy, input errors, state, registry."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from closed_form import Gaussian, Mixture, train_and_measure

import mireg
from mireg_ssm import SlicedScoreMatching

# ---------------------------------------------------------------------------------------------
# Accuracy against closed-form scores. Protocol (how MIGE uses the estimator): `calls` score()
# calls, each on a fresh batch of M samples, then the relative RMSE of the score at 2000 fresh
# points. Tolerances are the measured value (seed 0, this 2-core CPU) with margin; the measured
# value is in the comment of each row.
# ---------------------------------------------------------------------------------------------
ACCURACY = [
    # dist,    d,  M,   dtype,   objective, calls, tolerance   # measured
    ("gaussian", 2, 256, torch.float32, "ssm_vr", 300, 0.06),  # 0.030
    ("gaussian", 10, 256, torch.float32, "ssm_vr", 300, 0.12),  # 0.073
    ("gaussian", 40, 256, torch.float32, "ssm_vr", 300, 0.25),  # 0.160
    ("gaussian", 10, 64, torch.float32, "ssm_vr", 300, 0.16),  # 0.103
    ("gaussian", 10, 1024, torch.float32, "ssm_vr", 150, 0.13),  # 0.079
    ("gaussian", 10, 256, torch.float64, "ssm_vr", 300, 0.12),  # 0.069
    ("gaussian", 10, 256, torch.float32, "ssm", 300, 0.18),  # 0.120
    ("gaussian", 10, 256, torch.float32, "dsm", 300, 0.25),  # 0.161
    ("mixture", 2, 256, torch.float32, "ssm_vr", 800, 0.17),  # 0.104 (slowest to converge: 0.34 after 300)
    ("mixture", 10, 256, torch.float32, "ssm_vr", 300, 0.26),  # 0.174
    ("mixture", 40, 256, torch.float32, "ssm_vr", 300, 0.28),  # 0.184
    ("mixture", 10, 256, torch.float64, "ssm_vr", 300, 0.26),  # 0.174
    ("mixture", 2, 256, torch.float32, "dsm", 300, 0.55),  # 0.406 (DSM: noise floor, 0.402 after 800)
]


@pytest.mark.parametrize(("dist", "dim", "m", "dtype", "objective", "calls", "tolerance"), ACCURACY)
def test_accuracy_against_closed_form(
    dist: str, dim: int, m: int, dtype: torch.dtype, objective: str, calls: int, tolerance: float
) -> None:
    torch.manual_seed(0)  # nothing should depend on it; it only makes a failure reproducible
    distribution = {"gaussian": Gaussian, "mixture": Mixture}[dist](dim, dtype=dtype)
    estimator = SlicedScoreMatching(objective=objective)  # type: ignore[arg-type]
    error = train_and_measure(estimator, distribution, m=m, calls=calls)
    assert error < tolerance, f"{dist} d={dim} M={m} {dtype} {objective}: relative RMSE {error:.3f} >= {tolerance}"


def _batch(m: int = 64, d: int = 3, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(m, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_training_reduces_the_error_of_an_untrained_network() -> None:
    dist = Gaussian(10, dtype=torch.float32)
    untrained = train_and_measure(SlicedScoreMatching(), dist, m=128, calls=0)
    trained = train_and_measure(SlicedScoreMatching(), dist, m=128, calls=150)
    assert untrained > 0.9  # measured 1.04: a random network knows nothing about the score
    assert trained < 0.2  # measured 0.103


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "at", "message"),
    [
        (torch.tensor([[0.0, 1.0], [float("nan"), 2.0], [1.0, 1.0]]), None, "NaN/Inf"),
        (torch.tensor([[0.0, 1.0], [float("inf"), 2.0], [1.0, 1.0]]), None, "NaN/Inf"),
        (torch.zeros(1, 2), None, "at least 2 samples"),
        (torch.zeros(8), None, "shape"),
        (torch.zeros(2, 8, 3), None, "shape"),
        (torch.randn(8, 3), torch.randn(4, 2), "at must have shape"),
        (torch.randn(8, 3), torch.randn(4, 3, dtype=torch.float64), "dtype and device"),
    ],
)
def test_bad_input_raises_value_error(samples: torch.Tensor, at: torch.Tensor | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SlicedScoreMatching(n_steps=1).score(samples, at)


def test_changed_dimension_between_calls_raises() -> None:
    estimator = SlicedScoreMatching(n_steps=1)
    estimator.score(_batch(d=3))
    with pytest.raises(ValueError, match=r"built for d = 3 .* d = 4"):
        estimator.score(_batch(d=4))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"objective": "sm"}, "objective"),
        ({"hidden": (64, 0)}, "hidden"),
        ({"n_steps": -1}, "n_steps"),
        ({"lr": 0.0}, "lr"),
        ({"n_projections": 0}, "n_projections"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"activation": "relu"}, "activation"),
    ],
)
def test_bad_options_raise_value_error(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SlicedScoreMatching(**options)  # type: ignore[arg-type]


# --- output contract ------------------------------------------------------------------------


def test_output_is_detached_shaped_and_typed_like_the_input() -> None:
    estimator = SlicedScoreMatching(n_steps=2)
    samples = _batch(dtype=torch.float64).requires_grad_(True)
    s = estimator.score(samples)
    assert s.shape == (64, 3) and s.dtype == torch.float64 and not s.requires_grad
    assert samples.grad is None
    at = _batch(m=5, seed=1, dtype=torch.float64)
    out = estimator.score(samples, at=at)
    assert out.shape == (5, 3) and out.dtype == torch.float64
    # the network kept the dtype of its first call; a later float32 batch is answered in float32
    assert estimator.score(samples.detach().float()).dtype == torch.float32
    assert estimator.net is not None and estimator.net.layers[0].weight.dtype == torch.float64


def test_trains_under_no_grad_and_inference_mode() -> None:
    estimator = SlicedScoreMatching(n_steps=1)
    estimator.score(_batch())
    before = [p.clone() for p in estimator.net.parameters()]  # type: ignore[union-attr]
    with torch.no_grad():
        estimator.score(_batch(seed=1))
    with torch.inference_mode():
        out = estimator.score(_batch(seed=2))
    assert torch.isfinite(out).all()
    after = list(estimator.net.parameters())  # type: ignore[union-attr]
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert int(estimator.calls) == 3 and int(estimator.adam.step) == 3  # type: ignore[union-attr]


def test_n_steps_zero_only_evaluates() -> None:
    estimator = SlicedScoreMatching(n_steps=0)
    first = estimator.score(_batch())
    assert torch.equal(first, estimator.score(_batch()))


# --- seeding and state ----------------------------------------------------------------------


@pytest.mark.parametrize("objective", ["ssm_vr", "ssm", "dsm"])
def test_same_seed_same_result_other_seed_differs(objective: str) -> None:
    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed + 100)  # the global RNG must not matter
        estimator = SlicedScoreMatching(objective=objective, n_steps=3, seed=seed)  # type: ignore[arg-type]
        estimator.score(_batch())
        return estimator.score(_batch(seed=1))

    assert torch.equal(run(0), run(0))
    assert not torch.allclose(run(0), run(1))


@pytest.mark.parametrize("ema_decay", [0.95, 0.0])
def test_state_dict_round_trip_resumes_exactly(ema_decay: float) -> None:
    batches = [_batch(seed=i) for i in range(6)]
    uninterrupted = SlicedScoreMatching(n_steps=2, seed=3, ema_decay=ema_decay)
    expected = [uninterrupted.score(b) for b in batches][-1]

    first = SlicedScoreMatching(n_steps=2, seed=3, ema_decay=ema_decay)
    for b in batches[:3]:
        first.score(b)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = SlicedScoreMatching(n_steps=2, seed=3, ema_decay=ema_decay)  # never called: built by the load
    resumed.load_state_dict(torch.load(buffer))
    assert int(resumed.adam.step) == 6  # type: ignore[union-attr]
    got = [resumed.score(b) for b in batches[3:]][-1]
    assert torch.equal(got, expected)


def test_state_dict_load_rejects_other_widths() -> None:
    trained = SlicedScoreMatching(n_steps=1, hidden=(16,))
    trained.score(_batch())
    with pytest.raises(RuntimeError, match="size mismatch"):
        SlicedScoreMatching(hidden=(32,)).load_state_dict(trained.state_dict())


def test_deepcopy_before_first_call_gives_independent_estimators() -> None:
    prototype = SlicedScoreMatching(n_steps=1)
    a, b = copy.deepcopy(prototype), copy.deepcopy(prototype)
    a.score(_batch(d=2))
    b.score(_batch(d=5))  # each copy sizes its own network
    assert prototype.net is None and a.net.dim == 2 and b.net.dim == 5  # type: ignore[union-attr]
    loaded = copy.deepcopy(prototype)
    loaded.load_state_dict(a.state_dict())  # the load hook survives deepcopy
    assert torch.equal(loaded.score(_batch(d=2, seed=4)), a.score(_batch(d=2, seed=4)))


def test_adam_matches_torch_optim_adam() -> None:
    estimator = SlicedScoreMatching(n_steps=4, lr=1e-2, ema_decay=0.0)
    x = _batch(d=4, dtype=torch.float64)
    estimator.score(x, at=x[:2])  # builds; 4 steps
    reference = SlicedScoreMatching(n_steps=0, lr=1e-2, ema_decay=0.0)
    reference.score(x)  # same seed: same initial network, no training
    optimizer = torch.optim.Adam(reference.net.parameters(), lr=1e-2)  # type: ignore[union-attr]
    generator = torch.Generator().manual_seed(0 * 1_000_003 + 0)  # the first call's draws
    for _ in range(4):
        optimizer.zero_grad()
        reference.loss(x, generator).backward()
        optimizer.step()
    for mine, theirs in zip(estimator.net.parameters(), reference.net.parameters(), strict=True):  # type: ignore[union-attr]
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)


# --- registry -------------------------------------------------------------------------------


def test_registry_builds_ssm_and_validates_options() -> None:
    estimator = mireg.score_estimator("ssm", n_steps=5)
    assert isinstance(estimator, SlicedScoreMatching) and estimator.n_steps == 5 and estimator.parametric
    assert estimator.score(_batch()).shape == (64, 3)
    assert mireg.score_estimator("ssm", hidden=[32, 32]).hidden == (32, 32)  # a TOML list is fine
    with pytest.raises(mireg.OptionError, match="n_step"):
        mireg.score_estimator("ssm", n_step=5)
    with pytest.raises(mireg.OptionError, match="lr"):
        mireg.score_estimator("ssm", lr="fast")
    info = [e for e in mireg.list_estimators("score") if e.name == "ssm"]
    assert len(info) == 1 and info[0].plugin == "mireg-ssm"


def test_mige_with_ssm_backpropagates() -> None:
    mi = mireg.mi_gradient_estimator("mige", score="ssm", score_options={"n_steps": 2})
    rho = torch.tensor(0.5, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randn(128, 2, generator=g)
        y = rho * x + (1 - rho**2).sqrt() * torch.randn(128, 2, generator=g)
        mi(x, y).backward()
    assert rho.grad is not None and torch.isfinite(rho.grad)
    assert any(k.startswith("estimators.joint.net.") for k in mi.state_dict())
