"""Fuzzing the public API: every call returns finite values of the right shape or raises a clear error.

Inputs vary in batch size (1-64), width, dtype (float16/bfloat16/float32/float64/int64), scale
(1e-30 to 1e30) and NaN/Inf entries. A clear error is a mireg error, a ValueError or a TypeError
with a non-empty message; anything else (a torch-internal RuntimeError, a NaN result) fails.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor

import mireg
from mireg.errors import MiregError

SCORE_ESTIMATORS = sorted(info.name for info in mireg.list_estimators("score"))
MI_ESTIMATORS = sorted(info.name for info in mireg.list_estimators("mi_gradient"))
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64)
CLEAR_ERRORS = (MiregError, ValueError, TypeError)
FUZZ = settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)


@st.composite
def tensors(draw: st.DrawFn, rows: int, *, grad: bool = False) -> Tensor:
    """A ``[rows, width]`` tensor of a drawn width, dtype and scale, sometimes holding one NaN or Inf."""
    width = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from(DTYPES))
    scale = 10.0 ** draw(st.sampled_from([-30, -20, -8, -3, 0, 3, 8, 20, 30]))
    seed = draw(st.integers(0, 2**16))
    values = torch.randn(rows, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale
    poison = draw(st.sampled_from([None, None, None, float("nan"), float("inf")]))
    if poison is not None:
        values[draw(st.integers(0, rows - 1)), 0] = poison
    if not dtype.is_floating_point:
        return values.clamp(-1e6, 1e6).to(dtype)
    out = values.to(dtype)
    return out.requires_grad_(grad)


def outcome(call: Callable[[], Any], check: Callable[[Any], None]) -> None:
    """Run ``call``: a clear error passes, a result must satisfy ``check``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # calibration skipped, unsafe Stein ridge: warnings, not failures
        try:
            result = call()
        except CLEAR_ERRORS as error:
            assert str(error).strip(), f"{type(error).__name__} without a message"
            return
    check(result)


def finite_scalar(value: Any) -> None:
    assert isinstance(value, Tensor) and value.dim() == 0 and bool(torch.isfinite(value)), value


@pytest.mark.parametrize("name", SCORE_ESTIMATORS)
@FUZZ
@given(data=st.data(), rows=st.integers(1, 64))
def test_score_estimators(name: str, data: st.DataObject, rows: int) -> None:
    samples = data.draw(tensors(rows))

    def check(score: Any) -> None:
        assert isinstance(score, Tensor) and score.shape == samples.shape and score.dtype == samples.dtype
        assert bool(torch.isfinite(score).all())

    outcome(lambda: mireg.score_estimator(name).score(samples), check)


@pytest.mark.parametrize("name", MI_ESTIMATORS)
@FUZZ
@given(data=st.data(), rows=st.integers(1, 64))
def test_mi_gradient_estimators(name: str, data: st.DataObject, rows: int) -> None:
    x = data.draw(tensors(rows))
    z = data.draw(tensors(rows, grad=True))
    mi = mireg.mi_gradient_estimator(name)
    outcome(lambda: mi(x, z), finite_scalar)
    outcome(lambda: mi.estimate(x, z), lambda value: value is None or finite_scalar(value))


@FUZZ
@given(data=st.data(), rows=st.integers(1, 64))
def test_entropy_surrogate(data: st.DataObject, rows: int) -> None:
    z = data.draw(tensors(rows, grad=True))
    outcome(lambda: mireg.entropy_surrogate(z), finite_scalar)
