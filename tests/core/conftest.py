"""Fixtures for the core tests: fresh registries and tiny estimator classes (no entry points)."""

from __future__ import annotations

import types

import pytest
import torch
from torch import Tensor

import mireg
from mireg.registry import Registry


class GaussianScore(mireg.ScoreEstimator):
    """Score of a Gaussian fitted to the batch (mean and covariance): -Σ̂⁻¹(x - μ̂).

    Options:
      ridge: added to the covariance diagonal
    """

    name = "gauss"

    def __init__(self, *, ridge: float = 0.0) -> None:
        self.ridge = ridge

    def score(self, samples: Tensor, at: Tensor | None = None) -> Tensor:
        points = samples if at is None else at
        mean = samples.mean(0)
        centred = samples - mean
        cov = centred.T @ centred / samples.shape[0]
        cov = cov + self.ridge * torch.eye(cov.shape[0], dtype=cov.dtype)
        return -torch.linalg.solve(cov, (points - mean).T).T


class FixedGaussianScore(mireg.ScoreEstimator):
    """Exact score of N(0, cov) for a known covariance (an oracle, not an estimator)."""

    name = "oracle"

    def __init__(self, cov: Tensor) -> None:
        self.precision = torch.linalg.inv(cov)

    def score(self, samples: Tensor, at: Tensor | None = None) -> Tensor:
        points = samples if at is None else at
        return -points @ self.precision.to(points.dtype)


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

    def estimate(self, x: Tensor, z: Tensor) -> Tensor:
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
