"""Dense factorisations on the hot path of the kernel score estimators, at their fastest on each device."""

from __future__ import annotations

import torch
from torch import Tensor

#: On the CPU, matrices whose size is a power of two from this one on are factorised bordered by one identity row
#: and column: MKL's Cholesky is slower at those sizes (benchmarks/fit_speed.py, results/fit_speed.md).
CPU_SLOW_FROM = 128


def cholesky_ex(matrix: Tensor) -> tuple[Tensor, Tensor]:
    """``torch.linalg.cholesky_ex`` of ``matrix`` ``[..., n, n]``: the lower factor ``[..., n, n]``, ``info`` ``[...]``.

    On the CPU, for n a power of two from :data:`CPU_SLOW_FROM` on, the factor is the leading block of the
    factor of ``[[matrix, 0], [0, 1]]``, which is ``[[L, 0], [0, 1]]``: the same numbers, computed at a
    size where MKL runs at its usual speed (the returned block is a view with row stride n + 1).
    ``info`` is that of ``torch.linalg.cholesky_ex``: 0, or the order of the first leading minor that is
    not positive definite.
    """
    n = matrix.shape[-1]
    if matrix.device.type != "cpu" or n < CPU_SLOW_FROM or n & (n - 1):
        return torch.linalg.cholesky_ex(matrix)
    bordered = matrix.new_zeros(*matrix.shape[:-2], n + 1, n + 1)
    bordered[..., :n, :n] = matrix
    bordered[..., n, n] = 1
    factor, info = torch.linalg.cholesky_ex(bordered)
    return factor[..., :n, :n], info
