"""mireg plugin mireg-ssm: the sliced score matching score estimator ("ssm")."""

from __future__ import annotations

import mireg
from mireg.hookspecs import Register
from mireg_ssm.ssm import SlicedScoreMatching

__all__ = ["SlicedScoreMatching"]


@mireg.hookimpl
def register_score_estimators(register: Register) -> None:
    register(SlicedScoreMatching)
