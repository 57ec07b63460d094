"""The public entry points that take names: each resolves them with :func:`~mireg.registry.default_registry`.

This is the one layer that reaches for the process-wide registry; estimators never do (a MIGE
receives its score estimator as a class or an instance from whoever builds it).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from mireg import mige
from mireg.estimators import MIGradientEstimator, ScoreEstimator
from mireg.mige import Calibrate, Precondition
from mireg.registry import EstimatorInfo, default_registry


def score_estimator(name: str, **options: Any) -> ScoreEstimator:
    """Build the score estimator registered as ``name`` with keyword ``options``.

    Raises :class:`~mireg.errors.UnknownEstimatorError` (with suggestions) for an unknown name and
    :class:`~mireg.errors.OptionError` (listing the valid options) for an unknown or ill-typed option.
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


def entropy_surrogate(
    z: Tensor,
    score: str | type[ScoreEstimator] | ScoreEstimator = mige.DEFAULT_SCORE,
    *,
    score_options: dict[str, Any] | None = None,
    precondition: Precondition = "auto",
    shrinkage: float = 1e-3,
    calibrate: Calibrate = "affine",
) -> Tensor:
    """A scalar whose gradient w.r.t. everything upstream of ``z`` ``[M, d]`` estimates ∇H(z).

    ``score`` is a registered score-estimator name (resolved here to its class), a class or a
    built estimator; the rest is :func:`mireg.mige.entropy_surrogate`. Returns a 0-dim tensor.
    """
    resolved = default_registry().get("score", score).cls if isinstance(score, str) else score
    return mige.entropy_surrogate(
        z, resolved, score_options=score_options, precondition=precondition, shrinkage=shrinkage, calibrate=calibrate
    )
