"""Closed-form distributions for the tests, from :mod:`mireg.testing` (seeded as before)."""

from __future__ import annotations

import torch
from torch import Tensor

from mireg.testing import Gaussian, GaussianMixture, relative_rmse
from mireg.testing import sample_with_score as draw

__all__ = ["relative_rmse", "sample_with_score"]


def sample_with_score(kind: str, m: int, d: int, dtype: torch.dtype, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``(x [m, d], ∇ log q(x) [m, d])`` in ``dtype`` from one generator seeded with ``seed``:
    ``"gaussian"`` (:class:`~mireg.testing.Gaussian`) or ``"mixture"``
    (:class:`~mireg.testing.GaussianMixture`, weight 0.3)."""
    generator = torch.Generator().manual_seed(seed)
    laws = {"gaussian": Gaussian, "mixture": GaussianMixture}
    if kind not in laws:
        raise ValueError(f"unknown distribution {kind!r}")
    return draw(laws[kind](d, generator=generator, dtype=dtype), m, generator)
