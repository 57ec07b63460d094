"""Closed-form distributions for the tests, from :mod:`mireg.testing`."""

from mireg.testing import relative_rmse
from mireg.testing import seeded_sample_with_score as sample_with_score

__all__ = ["relative_rmse", "sample_with_score"]
