"""mireg plugin mireg-stein: the Stein gradient estimator, registered as ``"stein"``."""

from __future__ import annotations

import mireg
from mireg.hookspecs import Register
from mireg_stein.stein import Stein

__all__ = ["Stein"]


@mireg.hookimpl
def register_score_estimators(register: Register) -> None:
    """Register :class:`Stein` under the name ``"stein"``."""
    register(Stein)
