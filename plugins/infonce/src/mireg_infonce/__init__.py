"""mireg plugin mireg-infonce: the InfoNCE bound and Deep InfoMax's Jensen–Shannon estimator."""

from __future__ import annotations

import mireg
from mireg.hookspecs import Register
from mireg_infonce.infonce import InfoNCE
from mireg_infonce.jsd import JSD

__all__ = ["JSD", "InfoNCE"]


@mireg.hookimpl
def register_mi_gradient_estimators(register: Register) -> None:
    register(InfoNCE)
    register(JSD)
