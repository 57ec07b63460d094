"""Global batches under ``torch.distributed``: every rank's estimator sees all ranks' samples.

A score estimated from one shard, or negatives drawn from one shard, is a different (worse)
estimate than the one from the global batch. :func:`gather_rows` concatenates the rows of all
ranks in rank order, keeping the autograd path to each rank's own rows: its backward sums the
incoming gradients over ranks (every rank computes the same global quantity) and hands each rank
the slice of its rows. With DistributedDataParallel averaging parameter gradients, a step on N
processes × B samples then gives the gradient of one process with N·B samples.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from mireg.errors import ConfigError


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


def _global_draw(local: Tensor, draw: Any) -> Tensor:
    rank, size = world()
    if size == 1:
        return draw(local.shape, dtype=local.dtype, device=local.device)
    rows = local.shape[0]
    every = draw((size * rows, *local.shape[1:]), dtype=local.dtype, device=local.device)
    return every[rank * rows : (rank + 1) * rows]


def randn_like_global(local: Tensor) -> Tensor:
    """Standard normal noise shaped like ``local`` ``[B, ...]``: this rank's slice of one draw for
    the global batch ``[N·B, ...]``. Ranks that share a seed thus get different noise, and N
    processes draw exactly what one process with the global batch would."""
    return _global_draw(local, torch.randn)


def rand_like_global(local: Tensor) -> Tensor:
    """Uniform [0, 1) draws shaped like ``local``, sliced from one global draw (see :func:`randn_like_global`)."""
    return _global_draw(local, torch.rand)


def launched_with_ranks() -> bool:
    """Whether this process was started by ``torchrun`` (or another launcher) with several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: torch.device) -> torch.device:
    """Join the process group described by torchrun's environment; this rank's device.

    The backend is NCCL for CUDA devices (each rank on ``cuda:LOCAL_RANK``) and gloo on the CPU.
    """
    if not launched_with_ranks():
        raise ConfigError(
            "--distributed needs the environment of a multi-process launcher (WORLD_SIZE > 1, RANK, "
            "MASTER_ADDR, MASTER_PORT); start it as: torchrun --nproc_per_node=N -m mireg run CONFIG"
        )
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def leave() -> None:
    """Leave the process group joined by :func:`join` (nothing when none is initialised)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Average ``param.grad`` over ranks in place, as DistributedDataParallel does.

    Parameters without a gradient are skipped (an optimizer then leaves them alone): every rank
    runs the same computation on its slice, so every rank skips the same ones.
    """
    size = world()[1]
    if size == 1:
        return
    for param in params:
        if param.grad is not None:
            dist.all_reduce(param.grad)
            param.grad /= size


def average_buffers(module: torch.nn.Module) -> None:
    """Average the floating-point buffers of ``module`` (BatchNorm running statistics) over ranks,
    so that every rank holds the model that rank 0 checkpoints."""
    size = world()[1]
    if size == 1:
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer)
            buffer /= size


def any_rank(*flags: bool, device: torch.device) -> list[bool]:
    """For each flag, whether it is set on any rank (every rank gets the same answer)."""
    values = torch.tensor([float(f) for f in flags], device=device)
    if world()[1] > 1:
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [bool(v) for v in values.tolist()]


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average a dict of scalars over ranks (identical key order on every rank)."""
    if world()[1] == 1 or not values:
        return values
    packed = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(packed)
    return dict(zip(values, (packed / world()[1]).tolist(), strict=True))
