"""mireg plugin mireg-ssge: the Spectral Stein Gradient Estimator, registered as ``"ssge"``."""

from __future__ import annotations

import mireg
from mireg.hookspecs import Register
from mireg_ssge.ssge import SSGE

__all__ = ["SSGE"]


@mireg.hookimpl
def register_score_estimators(register: Register) -> None:
    """Register :class:`SSGE` under the name ``"ssge"``."""
    register(SSGE)
