"""mireg plugin mireg-mine: the MINE (Donsker–Varadhan) and MINE-f (NWJ) bounds on MI."""

from __future__ import annotations

import mireg
from mireg.hookspecs import Register
from mireg_mine.dv import MINE
from mireg_mine.nwj import MINEf
from mireg_mine.smile import SMILE

__all__ = ["MINE", "SMILE", "MINEf"]


@mireg.hookimpl
def register_mi_gradient_estimators(register: Register) -> None:
    register(MINE)
    register(MINEf)
    register(SMILE)
