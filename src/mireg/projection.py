"""Random projection of high-dimensional inputs (paper eq. 18-19, "scalable SSGE")."""

from __future__ import annotations

import torch
from torch import Tensor


def random_projection(
    in_dim: int,
    out_dim: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """A ``[out_dim, in_dim]`` Gaussian matrix R whose columns have unit length.

    ``x @ R.T`` maps ``[B, in_dim]`` to ``[B, out_dim]``. Distances shrink by about
    ``sqrt(in_dim / out_dim)`` only up to a common scale, which the median-heuristic bandwidth
    and the batch preconditioning of MIGE absorb.
    """
    if out_dim < 1 or in_dim < 1:
        raise ValueError(f"projection sizes must be positive, got in_dim={in_dim}, out_dim={out_dim}")
    draw_on = generator.device if generator is not None else device
    matrix = torch.randn(out_dim, in_dim, generator=generator, dtype=dtype, device=draw_on)
    return (matrix / matrix.norm(dim=0, keepdim=True)).to(device=device)


def flip_columns(matrix: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """``matrix`` ``[k, d]`` with each column multiplied by an independent random sign.

    A fixed Gaussian R with unit columns times a fresh random diagonal of signs D is a new random
    projection R D at every call (the cross terms of (R D)ᵀ R D get fresh signs, the column norms
    stay 1) for the price of d random bits, where a fresh Gaussian draw costs k · d normals and a
    normalisation.
    """
    signs = torch.randint(0, 2, (matrix.shape[1],), generator=generator, device=matrix.device).to(matrix.dtype)
    return matrix * (2 * signs - 1)
