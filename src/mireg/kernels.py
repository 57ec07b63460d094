"""RBF kernel pieces shared by kernel score estimators (SSGE, Stein).

The kernel is ``k(x, y) = exp(-|x - y|² / (2 h²))`` with bandwidth ``h``, by default the median
heuristic ``h = multiplier · median_{i<j} |x_i - x_j|``. Every function takes leading batch
dimensions ``[...]``, works in the dtype and on the device of its input, and builds nothing
larger than ``[..., M, M]``: the kernel-gradient sums reduce to matrix products.
"""

from __future__ import annotations

import functools

import attrs
import numpy as np
import torch
from torch import Tensor


def unit_spread(samples: Tensor, at: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor]:
    """``samples`` ``[..., M, d]`` and ``at`` ``[..., N, d]`` divided by a power of two ``f`` near the spread
    of ``samples`` (their largest deviation from the first sample), and ``f`` ``[..., 1, 1]``.

    Dividing by a power of two is exact, so a scale-equivariant estimator (median-heuristic RBF
    kernel) gives bit-identical results, while squared distances of samples at scale 1e±20 no
    longer leave the float32 range. Scores of the originals are the scores of the rescaled
    samples divided by ``f``; a fixed bandwidth in data units becomes ``h / f``.
    """
    spread = (samples - samples[..., :1, :]).abs().amax((-2, -1), keepdim=True)
    factor = torch.where(spread > 0, torch.exp2(torch.floor(torch.log2(spread))), torch.ones_like(spread))
    return samples / factor, None if at is None else at / factor, factor


def pairwise_sq_dists(x: Tensor, y: Tensor) -> Tensor:
    """Squared Euclidean distances ``|x_i - y_j|²`` by matrix products.

    Args:
        x: ``[..., N, d]``.
        y: ``[..., M, d]``.
    Returns:
        ``[..., N, M]``, clamped at 0. Both sets are shifted by the first row of ``y`` first,
        which makes the expansion ``|x|² + |y|² - 2 x·y`` accurate (and exactly 0 for
        identical rows).
    """
    origin = y[..., :1, :]
    x = x - origin
    y = y - origin
    sq = (x @ y.transpose(-1, -2)).mul_(-2)
    return sq.add_(x.pow(2).sum(-1).unsqueeze(-1)).add_(y.pow(2).sum(-1).unsqueeze(-2)).clamp_min_(0)


def median_heuristic(sq_dists: Tensor) -> Tensor:
    """The median pairwise distance ``median_{i<j} |x_i - x_j|`` of one sample set.

    The median is exact (the lower middle value for an even number of pairs, as
    :func:`torch.median`); above :data:`SELECT_DIRECT` pairs it is found by :func:`lower_median`,
    which brackets it with a sample of the pairs first (about 3× faster than a full
    :func:`torch.median` at M = 2048).

    Args:
        sq_dists: ``[..., M, M]`` squared distances of the samples to themselves
            (:func:`pairwise_sq_dists` ``(x, x)``), ``M >= 2``.
    Returns:
        ``[...]`` median distances.
    Raises:
        ValueError: when a median distance is 0 (all samples, or at least half of the pairs,
            identical), where no bandwidth can be derived from the data.
    """
    upper = _upper_triangle_index(sq_dists.shape[-1], sq_dists.device)
    median = lower_median(sq_dists.flatten(-2).index_select(-1, upper))
    if bool((median <= 0).any()):
        raise ValueError(
            "the median pairwise distance of the samples is 0 (all samples, or at least half of the "
            "pairs, are identical), so the median-heuristic bandwidth is undefined; pass distinct "
            "samples or a fixed `bandwidth` > 0"
        )
    return median.sqrt()


@functools.lru_cache(maxsize=8)
def _upper_triangle_index(m: int, device: torch.device) -> Tensor:
    """Flat indices ``[M (M - 1) / 2]`` of the strict upper triangle of an ``[M, M]`` matrix (cached:
    building them costs as much as the selection of the median)."""
    rows, cols = torch.triu_indices(m, m, 1, device=device)
    return rows * m + cols


#: Up to this many values :func:`lower_median` calls :func:`torch.median` directly (off the CPU).
SELECT_DIRECT = 1 << 16
#: Size of the strided sample that brackets the median in :func:`lower_median`.
SELECT_SAMPLE = 1 << 14


def lower_median(values: Tensor) -> Tensor:
    """The exact lower median (the ``(n - 1) // 2``-th smallest value) along the last dimension.

    Equal to ``values.median(-1).values``. On the CPU it is numpy's introselect (``np.partition``),
    several times faster than :func:`torch.median` there. Elsewhere long rows are bracketed first:
    the sorted strided sample of :data:`SELECT_SAMPLE` values gives bounds ``lo <= median <= hi``
    (8 standard deviations of the sample rank apart), one pass counts the values below ``lo`` and
    keeps the few in ``[lo, hi]``, and a selection among those gives the median. A bracket that misses falls back
    to a full selection, so the result is exact either way.

    Args:
        values: ``[..., n]`` finite values.
    Returns:
        ``[...]`` medians.
    """
    n = values.shape[-1]
    rank = (n - 1) // 2
    if values.device.type == "cpu" and values.dtype in (torch.float32, torch.float64):
        return torch.from_numpy(np.partition(values.detach().numpy(), rank, axis=-1)[..., rank].copy())
    if n <= SELECT_DIRECT:
        return values.median(-1).values
    medians = [_select(row, rank) for row in values.reshape(-1, n)]
    return torch.stack(medians).reshape(values.shape[:-1])


def _select(row: Tensor, rank: int) -> Tensor:
    """The ``rank``-th smallest (0-based) value of a long 1-D ``row``, exactly."""
    sample = row[:: row.numel() // SELECT_SAMPLE].sort().values
    size = sample.numel()
    centre = rank * size // row.numel()
    margin = 4 * int(size**0.5) + 1
    lo, hi = sample[max(centre - margin, 0)], sample[min(centre + margin, size - 1)]
    below = int((row < lo).sum())
    inside = row[(row >= lo) & (row <= hi)]
    if 0 <= rank - below < inside.numel():
        return inside.kthvalue(rank - below + 1).values
    return row.kthvalue(rank + 1).values


def resolve_bandwidth(sq_dists: Tensor, bandwidth: float | None, multiplier: float) -> Tensor:
    """The kernel bandwidth ``h``: ``bandwidth`` when given, else ``multiplier`` × the median heuristic.

    Args:
        sq_dists: ``[..., M, M]`` squared distances of the samples to themselves.
        bandwidth: a fixed ``h > 0`` or ``None`` for the median heuristic.
        multiplier: factor applied to the median distance (ignored with a fixed bandwidth).
    Returns:
        ``[...]`` bandwidths in the dtype and on the device of ``sq_dists``.
    """
    if bandwidth is not None:
        return sq_dists.new_full(sq_dists.shape[:-2], bandwidth)
    return multiplier * median_heuristic(sq_dists)


def rbf_kernel(sq_dists: Tensor, bandwidth: Tensor) -> Tensor:
    """``exp(-sq_dists / (2 h²))``.

    Args:
        sq_dists: ``[..., N, M]`` squared distances.
        bandwidth: ``[...]`` bandwidths ``h``.
    Returns:
        ``[..., N, M]`` kernel values.
    """
    scale = (-0.5 / bandwidth.pow(2))[..., None, None]
    return (sq_dists * scale).exp_()


def rbf_grad_sum(kernel: Tensor, x: Tensor, bandwidth: Tensor) -> Tensor:
    """``Σ_m ∇_{x_m} k(x_i, x_m)`` for every sample ``i``, without an ``[M, M, d]`` tensor.

    For the RBF kernel ``∇_y k(x, y) = (x - y) k(x, y) / h²``, so the sum is
    ``(x_i Σ_m K_im - (K X)_i) / h²``. It is the ``⟨∇, K⟩`` term of Stein's identity (the
    kernel is symmetric, so it also equals ``Σ_m ∇_{x_m} k(x_m, x_i)``).

    Args:
        kernel: ``[..., M, M]`` the (symmetric) kernel matrix ``K`` of ``x``.
        x: ``[..., M, d]`` the samples.
        bandwidth: ``[...]`` the bandwidths ``h`` used for ``kernel``.
    Returns:
        ``[..., M, d]``.
    """
    row_sums = kernel.sum(-1, keepdim=True)
    return (x * row_sums - kernel @ x) / bandwidth.pow(2)[..., None, None]


@attrs.frozen
class UnitRBF:
    """The RBF kernel of samples rescaled by :func:`unit_spread`, what SSGE and Stein fit on.

    ``samples`` ``[..., M, d]`` and ``at`` ``[..., N, d]`` (or ``None``) are divided by ``unit``
    ``[..., 1, 1]``; ``bandwidth`` ``[...]`` is in those units; ``kernel`` ``[..., M, M]`` is the
    kernel matrix of ``samples`` and ``grad_sum`` ``[..., M, d]`` its :func:`rbf_grad_sum`.
    """

    samples: Tensor
    at: Tensor | None
    unit: Tensor
    bandwidth: Tensor
    kernel: Tensor
    grad_sum: Tensor


def unit_rbf(samples: Tensor, at: Tensor | None, bandwidth: float | None, multiplier: float) -> UnitRBF:
    """The kernel pieces of ``samples`` ``[..., M, d]`` and ``at`` ``[..., N, d]`` after an exact rescaling
    (squares stay in the float range); a fixed ``bandwidth`` is in the units of the data, as given."""
    samples, at, unit = unit_spread(samples, at)
    sq = pairwise_sq_dists(samples, samples)
    h = resolve_bandwidth(sq, bandwidth, multiplier)
    if bandwidth is not None:
        h = h / unit[..., 0, 0]
    kernel = rbf_kernel(sq, h)
    return UnitRBF(samples, at, unit, h, kernel, rbf_grad_sum(kernel, samples, h))
