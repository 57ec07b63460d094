"""Conjugate gradients for symmetric positive-definite operators on ``[..., M, d]`` blocks."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def conjugate_gradient(
    operator: Callable[[Tensor], Tensor], rhs: Tensor, *, tol: float, max_iterations: int
) -> Tensor:
    """Solve ``operator(x) = rhs`` for ``x`` ``[..., M, d]`` (each leading index its own system).

    Starts from 0 and stops when every system has ``|residual| <= tol · |rhs|`` (Frobenius norms
    over the last two dimensions) or after ``max_iterations`` applications of ``operator``;
    converged systems stay frozen while the others continue.
    """
    solution = torch.zeros_like(rhs)
    residual = rhs.clone()
    direction = residual.clone()
    gamma = residual.pow(2).sum((-2, -1), keepdim=True)
    bound = tol**2 * gamma
    for _ in range(max_iterations):
        done = gamma <= bound
        if bool(done.all()):
            break
        image = operator(direction)
        curvature = (direction * image).sum((-2, -1), keepdim=True)
        alpha = torch.where(done, 0.0, gamma / curvature.clamp_min(torch.finfo(rhs.dtype).tiny))
        solution = solution + alpha * direction
        residual = residual - alpha * image
        fresh = residual.pow(2).sum((-2, -1), keepdim=True)
        beta = torch.where(done, 0.0, fresh / gamma.clamp_min(torch.finfo(rhs.dtype).tiny))
        direction = residual + beta * direction
        gamma = torch.where(done, gamma, fresh)
    return solution
