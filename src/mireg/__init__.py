"""mireg: mutual-information gradients for PyTorch, from pluggable score and bound estimators.

Public names (see the README)::

    mireg.score_estimator(name, **options)         -> ScoreEstimator
    mireg.mi_gradient_estimator(name, **options)   -> MIGradientEstimator (an nn.Module)
    mireg.list_estimators(kind=None)               -> list[EstimatorInfo]
    mireg.entropy_surrogate(z, score="ssge")       -> scalar whose gradient estimates ∇H(z)
    mireg.hookimpl                                  marker for plugin hooks
"""

from __future__ import annotations

from typing import Any

from mireg.errors import (
    AmbiguousEstimatorError,
    ConfigError,
    OptionError,
    PluginError,
    UnknownEstimatorError,
)
from mireg.estimate import MIEstimate, estimate_mi
from mireg.estimators import MIGradientEstimator, ScoreEstimator
from mireg.hookspecs import hookimpl
from mireg.mige import entropy_surrogate
from mireg.registry import EstimatorInfo, default_registry

__all__ = [
    "AmbiguousEstimatorError",
    "ConfigError",
    "EstimatorInfo",
    "MIEstimate",
    "MIGradientEstimator",
    "OptionError",
    "PluginError",
    "ScoreEstimator",
    "UnknownEstimatorError",
    "__version__",
    "entropy_surrogate",
    "estimate_mi",
    "hookimpl",
    "list_estimators",
    "mi_gradient_estimator",
    "score_estimator",
]


def score_estimator(name: str, **options: Any) -> ScoreEstimator:
    """Build the score estimator registered as ``name`` with keyword ``options``.

    Raises :class:`UnknownEstimatorError` (with suggestions) for an unknown name and
    :class:`OptionError` (listing the valid options) for an unknown or ill-typed option.
    """
    estimator: ScoreEstimator = default_registry().create("score", name, options)
    return estimator


def mi_gradient_estimator(name: str, **options: Any) -> MIGradientEstimator:
    """Build the MI-gradient estimator registered as ``name`` (e.g. ``"mige"``, ``"mine"``)."""
    estimator: MIGradientEstimator = default_registry().create("mi_gradient", name, options)
    return estimator


def list_estimators(kind: str | None = None) -> list[EstimatorInfo]:
    """Records (name, kind, plugin, version, summary, aliases) of every registered estimator;
    ``kind`` is ``"score"``, ``"mi_gradient"`` or ``None`` for both."""
    if kind is None:
        return [e for e in default_registry().list() if e.kind != "task"]
    if kind not in ("score", "mi_gradient"):
        raise ValueError(f"kind must be 'score', 'mi_gradient' or None, got {kind!r}")
    return default_registry().list(kind)


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from mireg.registry import _version

        return _version()
    raise AttributeError(f"module 'mireg' has no attribute {name!r}")
