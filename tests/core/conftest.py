"""Fixtures for the core tests: fresh registries and tiny estimator classes (no entry points)."""

from __future__ import annotations

import types

import pytest
from torch import Tensor

import mireg
from mireg.registry import Registry
from mireg.testing import FittedGaussianScore as GaussianScore

__all__ = ["GaussianScore"]


class ZeroMI(mireg.MIGradientEstimator):
    """An MI-gradient estimator that always returns zero.

    Options:
      scale: multiplies nothing, exists to be validated
    """

    name = "zero"
    aliases = ("nothing",)

    def __init__(self, *, scale: float = 1.0, mode: str = "a") -> None:
        super().__init__()
        self.scale = scale
        self.mode = mode

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        return (x.sum() + z.sum()) * 0.0

    def _estimate(self, x: Tensor, z: Tensor) -> Tensor:
        return x.new_zeros(())


def make_plugin(name: str, **hooks: object) -> types.ModuleType:
    """A module object carrying the given hook implementations (already marked or not)."""
    module = types.ModuleType(name)
    for hook, function in hooks.items():
        setattr(module, hook, function)
    return module


def score_plugin(*classes: type, aliases: tuple[str, ...] = ()) -> types.ModuleType:
    @mireg.hookimpl
    def register_score_estimators(register):  # type: ignore[no-untyped-def]
        for cls in classes:
            register(cls, aliases=aliases)

    return make_plugin("score_plugin", register_score_estimators=register_score_estimators)


@pytest.fixture
def registry() -> Registry:
    return Registry()
