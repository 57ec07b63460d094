"""Input validation done by the base classes before any estimator code runs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from conftest import GaussianScore, ZeroMI

import mireg
from mireg.critics import CriticEstimator
from mireg.errors import NonFiniteError, PluginError
from mireg.mige import MIGE
from mireg.registry import Registry

GOOD = torch.randn(16, 3)


@pytest.mark.parametrize(
    ("samples", "at", "message"),
    [
        (torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), None, "samples contains 1 NaN/Inf"),
        (torch.tensor([[0.0, float("inf")], [1.0, 2.0]]), None, "samples contains 1 NaN/Inf"),
        (torch.randn(1, 3), None, "at least 2 samples, got M = 1"),
        (torch.randn(5), None, r"shape \[M, d\], got shape \(5,\) \(rank 1\)"),
        (torch.randn(2, 5, 3), None, r"shape \[M, d\], got shape \(2, 5, 3\)"),
        (GOOD, torch.randn(4, 2), r"at must have shape \('N', 3\)"),
        (GOOD, torch.randn(4, 3, dtype=torch.float64), "must have the dtype and device of samples"),
        (torch.arange(6).reshape(3, 2), None, "floating-point"),
    ],
)
def test_bad_samples_raise_clear_errors(samples: torch.Tensor, at: torch.Tensor | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GaussianScore().score(samples, at)


def test_non_tensor_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="samples must be a torch.Tensor"):
        GaussianScore().score([[0.0, 1.0], [1.0, 0.0]])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("x", "z", "message"),
    [
        (torch.randn(4, 2), torch.randn(5, 2), "same number of samples .* got batch sizes 4 and 5"),
        (torch.randn(1, 2), torch.randn(1, 2), "at least 2 samples, got 1"),
        (torch.full((3, 2), float("nan")), torch.randn(3, 2), "x contains 6 NaN/Inf"),
        (torch.randn(3, 2), torch.full((3, 1), float("nan")), "z contains 3 NaN/Inf"),
    ],
)
def test_bad_pairs_raise_clear_errors(x: torch.Tensor, z: torch.Tensor, message: str) -> None:
    mi = ZeroMI()
    with pytest.raises(ValueError, match=message):
        mi(x, z)
    with pytest.raises(ValueError, match=message):
        mi.estimate(x, z)


def test_pairs_are_flattened_keeping_the_graph() -> None:
    images = torch.randn(4, 3, 2, 2, requires_grad=True)
    seen = {}

    class Spy(ZeroMI):
        def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            seen["shape"] = (tuple(x.shape), tuple(z.shape))
            return x.sum()

    Spy()(images, torch.randn(4, 5)).backward()
    assert seen["shape"] == ((4, 12), (4, 5))
    assert images.grad is not None and torch.equal(images.grad, torch.ones_like(images))


class MeanGap(CriticEstimator):
    """The critic's joint mean minus its negative mean (a minimal critic estimator)."""

    name = "mean-gap"

    def __init__(self, *, critic: str = "separable", x_dim: int | None = None) -> None:
        super().__init__(
            critic=critic,  # type: ignore[arg-type]
            hidden=8,
            layers=1,
            embed_dim=4,
            activation="relu",
            x_dim=x_dim,
            z_dim=None,
            negatives=None,
        )

    def bound(self, joint: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        return joint.mean() - negative.mean()


@pytest.mark.parametrize("critic", ["separable", "concat"])
def test_critics_refuse_other_widths_and_dtypes_than_their_first_call(critic: str) -> None:
    mi = MeanGap(critic=critic)
    assert torch.isfinite(mi(torch.randn(8, 3), torch.randn(8, 2)))
    with pytest.raises(
        ValueError, match=r"mean-gap critic was built for x of width 3 \(flattened; .* got x of width 4"
    ):
        mi(torch.randn(8, 4), torch.randn(8, 2))
    with pytest.raises(
        ValueError, match=r"x is torch.float64 .* parameters are torch.float32 .*mi.to\(torch.float64\)"
    ):
        mi.estimate(torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64))
    eager = MeanGap(critic=critic, x_dim=5)
    with pytest.raises(ValueError, match="built for x of width 5"):
        eager(torch.randn(8, 3), torch.randn(8, 2))


def test_mi_takes_x_and_z_by_name_and_hands_keyword_tensors_on() -> None:
    seen = {}

    class Keywords(ZeroMI):
        def forward(self, x: torch.Tensor, z: torch.Tensor, *, weight: torch.Tensor) -> torch.Tensor:
            seen["shapes"] = (tuple(x.shape), tuple(z.shape), tuple(weight.shape))
            return (x.sum(1) * weight).mean()

    mi = Keywords()
    mi(x=torch.randn(4, 3, 2), z=torch.randn(4, 5), weight=torch.ones(4))
    assert seen["shapes"] == ((4, 6), (4, 5), (4,))
    with pytest.raises(TypeError, match=r"called as mi\(x, z\) with two tensors, got 1"):
        mi(torch.randn(4, 3), weight=torch.ones(4))
    nan = torch.full((4,), float("nan"))
    with pytest.raises(NonFiniteError, match=r"'zero' \(.*Keywords\) returned a non-finite value"):
        mi(torch.randn(4, 3), torch.randn(4, 2), weight=nan)  # the output is checked too


def test_a_plugin_of_the_first_contract_overriding_score_still_registers_and_works() -> None:
    class OldStyle(mireg.ScoreEstimator):
        """Overrides score itself, as plugins of the first contract do."""

        name = "old-style"

        def score(self, samples: torch.Tensor, at: torch.Tensor | None = None) -> torch.Tensor:
            return -(samples if at is None else at)

    class Neither(mireg.ScoreEstimator):
        """Implements no score at all."""

        name = "neither"

    registry = Registry()
    registry.register_plugin(_plugin_registering(OldStyle), distribution="old")
    x = torch.randn(8, 2)
    assert torch.equal(registry.create("score", "old-style").score(x), -x)
    with pytest.raises(PluginError, match="implements neither _score"):
        registry.register_plugin(_plugin_registering(Neither), distribution="neither")
    with pytest.raises(NotImplementedError, match="must implement _score"):
        Neither().score(x)


def _plugin_registering(cls: type) -> object:
    class Plugin:
        @mireg.hookimpl
        def register_score_estimators(self, register: Callable[..., None]) -> None:
            register(cls)

    return Plugin()


def test_capabilities_are_declared() -> None:
    assert MIGE.accepts_log_var and not ZeroMI.accepts_log_var
    assert MIGE.accepts_mean and not ZeroMI.accepts_mean
    assert ZeroMI.min_batch_size() == 2
    assert MIGE.min_batch_size() == MIGE.min_batch_size({"precondition": "diag"}) == 3
    assert MIGE.min_batch_size({"precondition": "none"}) == 2
    z = torch.randn(2, 2, requires_grad=True)
    with pytest.raises(ValueError, match="at least 3 samples, got 2"):  # the declared minimum is the real one
        MIGE(score=GaussianScore())(torch.randn(2, 2), z)
