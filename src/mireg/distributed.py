"""Global batches under ``torch.distributed``: every rank's estimator sees all ranks' samples.

A score estimated from one shard, or negatives drawn from one shard, is a different (worse)
estimate than the one from the global batch. :func:`gather_rows` concatenates the rows of all
ranks in rank order, keeping the autograd path to each rank's own rows: its backward sums the
incoming gradients over ranks (every rank computes the same global quantity) and hands each rank
the slice of its rows. With DistributedDataParallel averaging parameter gradients, a step on N
processes × B samples then gives the gradient of one process with N·B samples.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, local: Tensor) -> Tensor:
        rank, size = world()
        counts = torch.tensor([local.shape[0]], device=local.device)
        all_counts = [torch.empty_like(counts) for _ in range(size)]
        dist.all_gather(all_counts, counts)
        sizes = [int(c) for c in all_counts]
        longest = max(sizes)
        padded = local.new_zeros((longest, *local.shape[1:]))
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in range(size)]
        dist.all_gather(parts, padded.contiguous())
        ctx.sizes, ctx.rank = sizes, rank
        return torch.cat([part[:n] for part, n in zip(parts, sizes, strict=True)])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)  # every rank differentiated the same global quantity
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]]


def gather_rows(local: Tensor) -> Tensor:
    """All ranks' rows ``[ΣB_r, ...]`` from this rank's ``[B, ...]``, differentiable w.r.t. ``local``.

    Without an initialised process group (or with one process) ``local`` is returned unchanged.
    Ranks may hold different numbers of rows (a last, shorter batch).
    """
    if world()[1] == 1:
        return local
    gathered: Tensor = _GatherRows.apply(local)
    return gathered
