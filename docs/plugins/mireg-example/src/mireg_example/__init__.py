"""mireg plugin mireg-example: a diagonal-Gaussian score estimator, registered as ``"diag-gauss"``.

The whole plugin contract: a :class:`mireg.ScoreEstimator` subclass with a ``name``, its options
as keyword-only ``__init__`` parameters and a ``_score`` method (users call ``score``, which the
base class defines: it validates around ``_score``), and one hook implementation that registers it. The entry
point in ``pyproject.toml`` (group ``mireg.plugins``) names this module.
"""

from __future__ import annotations

from typing import Annotated

from torch import Tensor

import mireg
from mireg.hookspecs import Register
from mireg.options import Range, check_options

__all__ = ["DiagonalGaussianScore"]


class DiagonalGaussianScore(mireg.ScoreEstimator):
    """Score of a Gaussian with diagonal covariance fitted to the batch: −(x − μ) / σ².

    Exact for any Gaussian once MIGE has whitened the batch; a baseline for anything else.

    Options:
      ridge: added to each fitted variance σ², so a constant coordinate stays finite
    """

    name = "diag-gauss"
    batched = True
    references = ("mireg plugin tutorial (docs/plugins.md)",)

    def __init__(self, *, ridge: Annotated[float, Range(0)] = 1e-6) -> None:
        check_options(DiagonalGaussianScore, locals())
        self.ridge = ridge

    def _score(self, samples: Tensor, at: Tensor | None) -> Tensor:
        """``samples`` ``[..., M, d]`` (validated by ``score``) -> the score at ``at`` ``[..., N, d]``."""
        mean = samples.mean(-2, keepdim=True)
        variance = samples.var(-2, unbiased=False, keepdim=True) + self.ridge
        points = samples if at is None else at
        return -(points - mean) / variance


@mireg.hookimpl
def register_score_estimators(register: Register) -> None:
    """Register :class:`DiagonalGaussianScore` under the name ``"diag-gauss"``."""
    register(DiagonalGaussianScore)
