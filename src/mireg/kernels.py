"""RBF kernel pieces shared by kernel score estimators (SSGE, Stein).

The kernel is ``k(x, y) = exp(-|x - y|² / (2 h²))`` with bandwidth ``h``, by default the median
heuristic ``h = multiplier · median_{i<j} |x_i - x_j|``. Every function takes leading batch
dimensions ``[...]``, works in the dtype and on the device of its input, and builds nothing
larger than ``[..., M, M]``: the kernel-gradient sums reduce to matrix products.
"""

from __future__ import annotations

import torch
from torch import Tensor


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

    Args:
        sq_dists: ``[..., M, M]`` squared distances of the samples to themselves
            (:func:`pairwise_sq_dists` ``(x, x)``), ``M >= 2``.
    Returns:
        ``[...]`` median distances.
    Raises:
        ValueError: when a median distance is 0 (all samples, or at least half of the pairs,
            identical), where no bandwidth can be derived from the data.
    """
    m = sq_dists.shape[-1]
    upper = torch.ones(m, m, dtype=torch.bool, device=sq_dists.device).triu(1)
    median = sq_dists[..., upper].median(-1).values
    if bool((median <= 0).any()):
        raise ValueError(
            "the median pairwise distance of the samples is 0 (all samples, or at least half of the "
            "pairs, are identical), so the median-heuristic bandwidth is undefined; pass distinct "
            "samples or a fixed `bandwidth` > 0"
        )
    return median.sqrt()


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
    return (sq_dists * scale).exp()


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
