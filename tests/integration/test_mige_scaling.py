"""MIGE's linear-cost landmark path against the exact path on the correlated-Gaussian toy.

x, ε ~ N(0, I_d), y = ρx + sqrt(1−ρ²)ε, ρ a leaf tensor: dI/dρ = ρd/(1−ρ²) lands in ρ.grad.
Fitting the score on 256 landmark rows of a batch of 1024 (and calibrating on all rows) must
give the exact path's mean gradient within 0.02 of the truth's scale, and both must stay within
the 5% accuracy target of batch 512.
"""

from __future__ import annotations

import pytest

import mireg
from mireg.testing import toy_gradient_ratio


# Measured with these seeds and batches: exact 0.982-1.001, 256 landmarks
# 0.979-0.999, largest difference 0.006 (d = 20, ρ = 0.5).
@pytest.mark.parametrize("rho", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("d", [5, 20])
def test_landmark_path_agrees_with_the_exact_path(d: int, rho: float) -> None:
    exact = toy_gradient_ratio(mireg.mi_gradient_estimator("mige", landmarks=None), d, rho, 1024, seeds=3)
    landmarks = toy_gradient_ratio(mireg.mi_gradient_estimator("mige", landmarks=256), d, rho, 1024, seeds=3)
    assert abs(landmarks - exact) < 0.02
    assert abs(landmarks - 1) < 0.05 and abs(exact - 1) < 0.05


def test_default_mige_switches_to_landmarks_and_stays_accurate_at_large_batches() -> None:
    # Default landmarks: batches of 4096 are fitted on a subset; measured 0.998-1.000 at B = 8192.
    mi = mireg.mi_gradient_estimator("mige")
    assert mi.landmarks is not None and mi.landmarks < 4096
    assert abs(toy_gradient_ratio(mi, 20, 0.9, 4096, seeds=2) - 1) < 0.05
