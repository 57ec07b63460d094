"""mireg: mutual-information gradients for PyTorch, from pluggable score and bound estimators.

Public names (see the README; they are defined in :mod:`mireg.api`, the one layer that resolves
names with the process-wide registry)::

    mireg.score_estimator(name, **options)         -> ScoreEstimator
    mireg.mi_gradient_estimator(name, **options)   -> MIGradientEstimator (an nn.Module)
    mireg.list_estimators(kind=None)               -> list[EstimatorInfo]
    mireg.entropy_surrogate(z, score="ssge")       -> scalar whose gradient estimates ∇H(z)
    mireg.hookimpl                                  marker for plugin hooks
"""

from __future__ import annotations

from mireg.api import entropy_surrogate, list_estimators, mi_gradient_estimator, score_estimator
from mireg.errors import (
    AmbiguousEstimatorError,
    CalibrationError,
    CalibrationWarning,
    ConfigError,
    NonFiniteError,
    OptionError,
    OutputError,
    PluginError,
    ScoreOutputError,
    UnknownEstimatorError,
)
from mireg.estimate import MIEstimate, estimate_mi
from mireg.estimators import MIGradientEstimator, ScoreEstimator
from mireg.hookspecs import hookimpl
from mireg.registry import EstimatorInfo, _version

__all__ = [
    "AmbiguousEstimatorError",
    "CalibrationError",
    "CalibrationWarning",
    "ConfigError",
    "EstimatorInfo",
    "MIEstimate",
    "MIGradientEstimator",
    "NonFiniteError",
    "OptionError",
    "OutputError",
    "PluginError",
    "ScoreEstimator",
    "ScoreOutputError",
    "UnknownEstimatorError",
    "__version__",
    "entropy_surrogate",
    "estimate_mi",
    "hookimpl",
    "list_estimators",
    "mi_gradient_estimator",
    "score_estimator",
]

__version__ = _version()
