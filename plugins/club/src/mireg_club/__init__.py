"""mireg plugin mireg-club: CLUB, the contrastive log-ratio upper bound on MI, and its sampled variant."""

from __future__ import annotations

import mireg
from mireg.hookspecs import Register
from mireg_club.club import CLUB, CLUBSample

__all__ = ["CLUB", "CLUBSample"]


@mireg.hookimpl
def register_mi_gradient_estimators(register: Register) -> None:
    register(CLUB)
    register(CLUBSample)
