"""mireg.linalg.cholesky_ex: the factor and info of torch.linalg.cholesky_ex at every size, bordered or not."""

from __future__ import annotations

import pytest
import torch

from mireg.linalg import CPU_SLOW_FROM, cholesky_ex


def spd(n: int, stack: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    a = torch.randn(*stack, n, n, generator=torch.Generator().manual_seed(n), dtype=dtype)
    return a @ a.mT / n + torch.eye(n, dtype=dtype)


@pytest.mark.parametrize("n", [3, CPU_SLOW_FROM - 1, CPU_SLOW_FROM, 3 * CPU_SLOW_FROM, 4 * CPU_SLOW_FROM])
@pytest.mark.parametrize("stack", [(), (2,)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_factor_is_torchs(n: int, stack: tuple[int, ...], dtype: torch.dtype) -> None:
    matrix = spd(n, stack, dtype)
    factor, info = cholesky_ex(matrix)
    expected, expected_info = torch.linalg.cholesky_ex(matrix)
    assert factor.shape == matrix.shape and info.shape == stack
    # Bordering leaves LAPACK's arithmetic unchanged up to blocking: float tolerance, and L Lᵀ is the matrix.
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(factor, expected, rtol=tolerance, atol=tolerance)
    torch.testing.assert_close(factor @ factor.mT, matrix, rtol=10 * tolerance, atol=10 * tolerance)
    assert torch.equal(factor.triu(1), torch.zeros_like(factor))
    assert torch.equal(info, expected_info)
    solution = torch.cholesky_solve(torch.ones(*stack, n, 2, dtype=dtype), factor)
    torch.testing.assert_close(matrix @ solution, torch.ones_like(solution), rtol=100 * tolerance, atol=100 * tolerance)


def test_info_names_the_first_minor_that_is_not_positive_definite() -> None:
    n = CPU_SLOW_FROM
    matrix = torch.eye(n, dtype=torch.float64).repeat(2, 1, 1)
    matrix[1, 40, 40] = -1.0  # the 41st leading minor of the second matrix is negative
    _, info = cholesky_ex(matrix)
    assert info.tolist() == [0, 41]
