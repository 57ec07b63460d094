"""Radial matrix-valued kernels K(x, y) ∈ R^{d×d} applied as operators, never as [N·d, M·d] matrices.

Every kernel here has the form ``K(x, y) = A(ρ) I + B(ρ) r rᵀ`` with ``r = x − y``, ``ρ = |r|²``:

* diagonal kernels, ``K = φ(ρ) I`` (``B = 0``): RBF ``φ = exp(−ρ / (2h²))`` and IMQ
  ``φ = (1 + ρ/h²)^(−1/2)``;
* curl-free kernels, ``K = −∇∇ψ(r)`` with ``ψ(r) = h² φ(|r|²)`` (Zhou, Shi & Zhu 2020, eq. 21-22),
  i.e. ``A = −2h² φ'(ρ)``, ``B = −4h² φ''(ρ)``; every score they represent is a gradient field.

All four are normalised to ``K(x, x) = I`` and satisfy ``‖K(x, y)‖₂ ≤ 1``, so the sample operator
``L̂ = (1/M) Σ_m K(·, x_m) K(·, x_m)*`` has norm at most 1 (block Gershgorin): the regularisation
``lam`` of the estimators is in units of that bound, whatever the bandwidth.

The empirical Stein term of a sample set ``y_1..y_M`` is ``ζ̂(x) = −(1/M) Σ_m div_{y_m} K(x, y_m)``
(row-wise divergence), the estimate of ``E_p[K(x, y) ∇ log p(y)]`` by Stein's identity. With
``div_y K(x, y) = −D(ρ) r``: ``D = 2φ'`` (diagonal), ``D = −4h² ((d + 2) φ'' + 2ρ φ''')``
(curl-free: the divergence is ``∇Δψ``), so ``ζ̂(x_i) = (1/M) Σ_j D_ij r_ij``.

Memory: the fields A, B, D are ``[..., N, M]``; an application to ``c`` ``[..., M, d]`` builds one
more ``[..., N, M]`` (the projections ``r_ij · c_j``) and costs three ``[N, M] × [M, d]``-sized
products (one for diagonal kernels). Nothing of size ``N·M·d`` is built except by :meth:`dense`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from mireg.kernels import pairwise_sq_dists

KernelName = Literal["curlfree-imq", "curlfree-rbf", "diagonal-imq", "diagonal-rbf"]
KERNELS: tuple[KernelName, ...] = ("curlfree-imq", "curlfree-rbf", "diagonal-imq", "diagonal-rbf")

#: Coefficients of the IMQ profile's derivatives: φ⁽ⁿ⁾(ρ) = c_n h^(−2n) (1 + ρ/h²)^(−1/2 − n).
_IMQ = (1.0, -0.5, 0.75, -1.875)


def check_kernel(name: str) -> None:
    """Raise a ``ValueError`` unless ``name`` is one of :data:`KERNELS`."""
    if name not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {name!r}")


def _profile(name: KernelName, sq: Tensor, h: Tensor, order: int) -> list[Tensor]:
    """φ, φ', …, φ⁽ᵒʳᵈᵉʳ⁾ at ``sq`` ``[..., N, M]`` for bandwidths ``h`` ``[...]``, each ``[..., N, M]``.

    Each derivative is the previous one times a factor (``−1/(2h²)`` for RBF, ``c_n/c_(n−1) ·
    1/(h² + ρ)`` for IMQ): one elementwise product per order, no powers.
    """
    inv = h.pow(-2)[..., None, None]  # 1/h²
    if name.endswith("rbf"):
        values = [(sq * (-0.5 * inv)).exp()]
        for _ in range(order):
            values.append(values[-1] * (-0.5 * inv))
        return values
    base = (sq * inv).add_(1).reciprocal_()  # (1 + ρ/h²)^(−1)
    step = base * inv
    values = [base.sqrt()]
    for n in range(1, order + 1):
        values.append(values[-1] * step * (_IMQ[n] / _IMQ[n - 1]))
    return values


class MatrixKernel:
    """The kernel between points ``x`` ``[..., N, d]`` and samples ``y`` ``[..., M, d]``, bandwidth ``h`` ``[...]``.

    Holds the fields A, B (curl-free only) and D, each ``[..., N, M]``; see the module docstring.
    """

    def __init__(self, name: KernelName, x: Tensor, y: Tensor, h: Tensor, sq: Tensor | None = None) -> None:
        check_kernel(name)
        origin = y[..., :1, :]  # shifted coordinates keep r_ij · c_j accurate far from the origin
        self.name = name
        self.origin = origin  # [..., 1, d]: add it back to x and y for the original coordinates
        self.h = h
        self.x = x - origin
        self.y = y - origin
        self.curl_free = name.startswith("curlfree")
        sq = pairwise_sq_dists(x, y) if sq is None else sq
        self.sq = sq
        h2 = h.pow(2)[..., None, None]
        if self.curl_free:
            _, first, second, third = _profile(name, sq, h, 3)
            self.a = -2 * h2 * first
            self.b: Tensor | None = -4 * h2 * second
            self.d = -4 * h2 * ((x.shape[-1] + 2) * second + 2 * sq * third)
        else:
            phi, first = _profile(name, sq, h, 1)
            self.a = phi
            self.b = None
            self.d = 2 * first

    def apply(self, c: Tensor) -> Tensor:
        """``Σ_j K(x_i, y_j) c_j``: ``c`` ``[..., M, d]`` -> ``[..., N, d]``."""
        out = self.a @ c
        if self.b is None:
            return out
        weights = self.b * (self.x @ c.mT - (self.y * c).sum(-1).unsqueeze(-2))  # B_ij r_ij·c_j
        return out + self.x * weights.sum(-1, keepdim=True) - weights @ self.y

    def apply_adjoint(self, c: Tensor) -> Tensor:
        """``Σ_i K(x_i, y_j)ᵀ c_i``: ``c`` ``[..., N, d]`` -> ``[..., M, d]``."""
        out = self.a.mT @ c
        if self.b is None:
            return out
        weights = self.b * ((self.x * c).sum(-1, keepdim=True) - c @ self.y.mT)  # B_ij r_ij·c_i
        return out + weights.mT @ self.x - self.y * weights.sum(-2).unsqueeze(-1)

    def stein_term(self) -> Tensor:
        """``ζ̂(x_i) = −(1/M) Σ_j div_{y_j} K(x_i, y_j) = (1/M) Σ_j D_ij (x_i − y_j)``, ``[..., N, d]``."""
        m = self.y.shape[-2]
        return (self.x * self.d.sum(-1, keepdim=True) - self.d @ self.y) / m

    def dense(self) -> Tensor:
        """The matrix ``[..., N·d, M·d]`` (row block i, column block j is K(x_i, y_j)).

        Builds ``N·M·d²`` values: for small problems only (spectral cut-off with a curl-free kernel).
        """
        *batch, n, d = self.x.shape
        m = self.y.shape[-2]
        eye = torch.eye(d, dtype=self.x.dtype, device=self.x.device)
        blocks = self.a[..., None, None] * eye  # [..., N, M, d, d]
        if self.b is not None:
            r = self.x.unsqueeze(-2) - self.y.unsqueeze(-3)  # [..., N, M, d]
            blocks = blocks + self.b[..., None, None] * r.unsqueeze(-1) * r.unsqueeze(-2)
        return blocks.transpose(-3, -2).reshape(*batch, n * d, m * d)
