"""mireg plugin mireg-kscore: the nonparametric score estimators of Zhou, Shi & Zhu (ICML 2020).

Registers ``"nu-method"`` (:class:`NuMethod`), ``"landweber"`` (:class:`Landweber`), ``"kef"``
(:class:`KEF`, Tikhonov, with conjugate gradients and Nyström subsampling) and
``"spectral-cutoff"`` (:class:`SpectralCutoff`), each with diagonal or curl-free IMQ and RBF
kernels (:mod:`mireg_kscore.matrix_kernels`).
"""

from __future__ import annotations

import mireg
from mireg.hookspecs import Register
from mireg_kscore.iterative import Landweber, NuMethod
from mireg_kscore.spectral_cutoff import SpectralCutoff
from mireg_kscore.tikhonov import KEF

__all__ = ["KEF", "Landweber", "NuMethod", "SpectralCutoff"]


@mireg.hookimpl
def register_score_estimators(register: Register) -> None:
    """Register the four estimators under their names."""
    for cls in (NuMethod, Landweber, KEF, SpectralCutoff):
        register(cls)
