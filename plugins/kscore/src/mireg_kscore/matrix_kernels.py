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

def check_kernel(name: str) -> None:
    """Raise a ``ValueError`` unless ``name`` is one of :data:`KERNELS`."""
    if name not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {name!r}")


def _fields(name: KernelName, sq: Tensor, h: Tensor, dim: int) -> tuple[Tensor, Tensor | None, Tensor]:
    """The fields ``A``, ``B`` (``None`` for diagonal kernels) and ``D`` at ``sq`` ``[..., N, M]`` for
    bandwidths ``h`` ``[...]`` in dimension ``dim``, each ``[..., N, M]``, from their closed forms.

    With ``e = exp(−ρ/(2h²))`` (RBF) and ``u = 1/(1 + ρ/h²)`` (IMQ, ``φ = √u``, so ``ρ u / h² = 1 − u``):

    * diagonal RBF ``A = e``, ``D = −e/h²``; diagonal IMQ ``A = √u``, ``D = −u √u / h²``;
    * curl-free RBF ``A = e``, ``B = −e/h²``, ``D = −(e/h²) (dim + 2 − ρ/h²)``;
    * curl-free IMQ ``A = u √u``, ``B = −3 u² √u / h²``, ``D = −(u² √u / h²) (3 dim − 9 + 15 u)``.

    Each is a handful of elementwise passes (in place where the value is not kept).
    """
    inv = h.pow(-2)[..., None, None]  # 1/h²
    if name.endswith("rbf"):
        e = (sq * (-0.5 * inv)).exp_()
        scaled = e * -inv  # −e/h²
        if not name.startswith("curlfree"):
            return e, None, scaled
        return e, scaled, (sq * -inv).add_(dim + 2).mul_(scaled)
    u = (sq * inv).add_(1).reciprocal_()
    root = u.sqrt()
    if not name.startswith("curlfree"):
        return root, None, (u * -inv).mul_(root)
    a = u * root  # u √u
    b = (a * u).mul_(-3 * inv)  # −3 u² √u / h²
    return a, b, (u * 5).add_(dim - 3).mul_(b)  # B (dim − 3 + 5u)


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
        self.a, self.b, self.d = _fields(name, sq, h, x.shape[-1])
        # [x, −1] and [y, 1] ([..., N, d + 1], [..., M, d + 1]): one product then gives r_ij·c_j for all
        # pairs with no elementwise pass besides the weighting. The products with the weights stay d wide
        # (plus one row or column sum): a (d + 1)-wide right-hand side is measurably slower at d = 64.
        self.x_ext = torch.cat([self.x, -torch.ones_like(self.x[..., :1])], -1) if self.curl_free else None
        self.y_ext = torch.cat([self.y, torch.ones_like(self.y[..., :1])], -1) if self.curl_free else None

    def apply(self, c: Tensor) -> Tensor:
        """``Σ_j K(x_i, y_j) c_j``: ``c`` ``[..., M, d]`` -> ``[..., N, d]``."""
        out = self.a @ c
        if self.b is None:
            return out
        assert self.x_ext is not None
        projections = torch.cat([c, (self.y * c).sum(-1, keepdim=True)], -1)  # [c_j, y_j·c_j]
        weights = (self.x_ext @ projections.mT).mul_(self.b)  # W_ij = B_ij r_ij·c_j
        return out.addcmul_(self.x, weights.sum(-1, keepdim=True)).sub_(weights @ self.y)

    def apply_adjoint(self, c: Tensor) -> Tensor:
        """``Σ_i K(x_i, y_j)ᵀ c_i``: ``c`` ``[..., N, d]`` -> ``[..., M, d]``."""
        out = self.a.mT @ c
        if self.b is None:
            return out
        assert self.y_ext is not None
        projections = torch.cat([-c, (self.x * c).sum(-1, keepdim=True)], -1)  # [−c_i, x_i·c_i]
        weights = (projections @ self.y_ext.mT).mul_(self.b)  # W_ij = B_ij r_ij·c_i
        return out.add_(weights.mT @ self.x).addcmul_(self.y, weights.sum(-2).unsqueeze(-1), value=-1)

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
