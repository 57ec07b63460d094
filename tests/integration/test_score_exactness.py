"""SSGE with its whole spectrum and no ridge is the Stein estimator (issue 3's exactness check).

Both plugins are needed, so the check lives with the tests of the all-plugins environment.
"""

from __future__ import annotations

import torch

from mireg.testing import relative_rmse
from mireg_ssge import SSGE
from mireg_stein import Stein


def test_full_spectrum_without_ridge_equals_stein() -> None:
    x = torch.randn(64, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    points = torch.randn(20, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    exact = SSGE(n_eigen=64, eta=0.0, eigensolver="eigh")
    assert relative_rmse(exact.score(x), Stein(eta=0.0, bandwidth_multiplier=1.0).score(x)) < 1e-8
    ridged = SSGE(n_eigen=64, eta=0.1, eigensolver="eigh")  # Stein's out-of-sample extension
    ridged_stein = Stein(eta=0.1, bandwidth_multiplier=1.0)
    assert relative_rmse(ridged.score(x, at=points), ridged_stein.score(x, at=points)) < 1e-8
