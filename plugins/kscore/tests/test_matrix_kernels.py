"""The matrix kernels against autograd: K(x, y) = −∇∇ψ (curl-free) or φ I, the Stein term, the norm bound."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from mireg_kscore.matrix_kernels import KERNELS, KernelName, MatrixKernel

F64 = torch.float64
H = torch.tensor(1.3, dtype=F64)


def _profile(name: str, sq: Tensor) -> Tensor:
    """φ(ρ), written independently of the module: exp(−ρ/(2h²)) or (1 + ρ/h²)^(−1/2)."""
    return torch.exp(-sq / (2 * H**2)) if name.endswith("rbf") else (1 + sq / H**2).rsqrt()


def _block(name: str, x: Tensor, y: Tensor) -> Tensor:
    """K(x, y) ``[d, d]`` from its definition: φ I, or −∇∇ψ(x − y) with ψ(r) = h² φ(|r|²) (autograd Hessian)."""
    if name.startswith("diagonal"):
        return _profile(name, (x - y).pow(2).sum()) * torch.eye(x.shape[-1], dtype=F64)
    potential = lambda r: H**2 * _profile(name, r.pow(2).sum())  # noqa: E731  ψ(r)
    return -torch.autograd.functional.hessian(potential, x - y, create_graph=True)


def _points() -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, generator=generator, dtype=F64)
    y = torch.randn(5, 3, generator=generator, dtype=F64) + 2  # off the origin: the shift must not matter
    return x, y


@pytest.mark.parametrize("name", KERNELS)
def test_operator_matches_the_definition(name: KernelName) -> None:
    x, y = _points()
    kernel = MatrixKernel(name, x, y, H)
    dense = torch.cat([torch.cat([_block(name, a, b) for b in y], 1) for a in x], 0).detach()  # [N·d, M·d]
    generator = torch.Generator().manual_seed(1)
    c = torch.randn(5, 3, generator=generator, dtype=F64)
    e = torch.randn(4, 3, generator=generator, dtype=F64)
    assert torch.allclose(kernel.dense(), dense, atol=1e-13)
    assert torch.allclose(kernel.apply(c).flatten(), dense @ c.flatten(), atol=1e-13)
    assert torch.allclose(kernel.apply_adjoint(e).flatten(), dense.T @ e.flatten(), atol=1e-13)


@pytest.mark.parametrize("name", KERNELS)
def test_stein_term_is_minus_the_mean_divergence(name: KernelName) -> None:
    x, y = _points()
    expected = torch.zeros_like(x)
    for i, point in enumerate(x):
        for sample in y:
            jacobian = torch.autograd.functional.jacobian(lambda s, p=point: _block(name, p, s), sample)  # [d, d, d]
            expected[i] -= torch.einsum("ikk->i", jacobian) / len(y)
    assert torch.allclose(MatrixKernel(name, x, y, H).stein_term(), expected, atol=1e-13)


@pytest.mark.parametrize("name", KERNELS)
def test_normalised_so_that_the_sample_operator_has_norm_at_most_one(name: KernelName) -> None:
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    kernel = MatrixKernel(name, x, x, torch.tensor(0.7, dtype=F64))
    blocks = kernel.dense().reshape(40, 3, 40, 3).transpose(1, 2)
    assert torch.allclose(blocks[range(40), range(40)], torch.eye(3, dtype=F64).expand(40, 3, 3), atol=1e-14)
    assert float(torch.linalg.matrix_norm(blocks, ord=2).max()) <= 1 + 1e-12
    assert float(torch.linalg.eigvalsh(kernel.dense() / 40).max()) <= 1 + 1e-12


def test_unknown_kernel_is_refused() -> None:
    x = torch.randn(5, 2)
    with pytest.raises(ValueError, match="kernel must be one of"):
        MatrixKernel("rbf", x, x, torch.tensor(1.0))  # type: ignore[arg-type]
