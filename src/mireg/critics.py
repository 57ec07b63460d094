"""Critics T(x, z) for the variational MI bounds (MINE, MINE-f/NWJ, InfoNCE, JSD).

A critic scores pairs: ``critic(x, z)`` with ``x`` ``[B, dx]`` and ``z`` ``[B, dz]`` returns the
``[B, B]`` matrix ``T[i, j] = T(x_i, z_j)``. Its diagonal holds the B samples of the joint
p(x, z); the off-diagonal entries are the B(B-1) samples of the product of marginals
p(x)p(z) that every bound here uses as negatives. No Python loop runs over pairs:

* :class:`SeparableCritic`, ``T(x, z) = f(x)ᵀ g(z)`` with two MLP encoders: one matmul gives all
  pairs, so a step costs two MLP passes over B rows plus a ``[B, e] @ [e, B]`` product.
* :class:`ConcatCritic`, ``T(x, z) = h([x, z])`` with one MLP on the concatenation. Its first
  layer is affine, ``W [x; z] + b = W_x x + W_z z + b``, so the first hidden layer of all B×B
  pairs is one broadcast sum ``[B, 1, H] + [1, B, H]``; the remaining layers run once over the
  ``[B, B, H]`` tensor. This is the same function as an MLP on the expanded ``[B, B, dx + dz]``
  input, without materialising it. The default one-hidden-layer ReLU critic goes further
  (:class:`_ReluPairScores`): blocks of rows of the ``[B, B, H]`` hidden layer are computed,
  used and dropped (recomputed in the backward pass), so no ``[B, B, H]`` tensor is ever held.

:func:`pair_scores` gives the estimators their two inputs, the joint scores ``[B]`` and the
negative scores ``[B, K]``: all ``K = B - 1`` off-diagonal pairs by default, or, with
``negatives=K``, the pairs ``(x_i, z_{(i+s) mod B})`` for s = 1..K (a factor ~B/K less work for
the concat critic, at the price of a noisier estimate of the marginal term).

Input sizes are inferred on the first call (``torch.nn.LazyLinear``) unless ``x_dim`` and
``z_dim`` are given. A lazy critic's parameters are placeholders until its first forward: an
optimizer built before that call does hold them (they are materialised in place, same
objects), but moving the module to another device or dtype must happen before the first
call, and anything that reads parameter shapes (counting parameters, ``clip_grad_norm_``
before the first step) needs the sizes. Give ``x_dim``/``z_dim`` to build eagerly, or call
:func:`materialize` with one batch.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable

from mireg.estimators import MIGradientEstimator

CriticKind = Literal["separable", "concat"]
Activation = Literal["relu", "elu", "gelu", "silu", "tanh", "leaky_relu"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}


def _linear(in_features: int | None, out_features: int, *, bias: bool = True) -> nn.Module:
    """``nn.Linear``, or ``nn.LazyLinear`` when ``in_features`` is ``None`` (inferred at first call)."""
    if in_features is None:
        return nn.LazyLinear(out_features, bias=bias)
    return nn.Linear(in_features, out_features, bias=bias)


def mlp(in_features: int | None, hidden: int, layers: int, out_features: int, activation: Activation) -> nn.Sequential:
    """An MLP ``[..., in] -> [..., out]`` with ``layers`` hidden layers of width ``hidden``.

    ``in_features=None`` makes the first layer lazy. ``layers=0`` is a single linear map.
    """
    act = _ACTIVATIONS[activation]
    modules: list[nn.Module] = []
    width = in_features
    for _ in range(layers):
        modules += [_linear(width, hidden), act()]
        width = hidden
    modules.append(_linear(width, out_features))
    return nn.Sequential(*modules)


class SeparableCritic(nn.Module):
    """Separable critic ``T(x, z) = f(x)ᵀ g(z)`` with MLP encoders f, g: ``[B, d] -> [B, embed_dim]``.

    The log density ratio of correlated Gaussians, a quadratic form in (x, z), is representable
    exactly (f and g can output x, |x|², 1 and z, 1, |z|²), which is why this is the default.
    """

    def __init__(
        self,
        *,
        x_dim: int | None = None,
        z_dim: int | None = None,
        hidden: int = 256,
        layers: int = 2,
        embed_dim: int = 32,
        activation: Activation = "relu",
    ) -> None:
        super().__init__()
        self.f = mlp(x_dim, hidden, layers, embed_dim, activation)
        self.g = mlp(z_dim, hidden, layers, embed_dim, activation)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """All pair scores: ``x`` ``[B, dx]``, ``z`` ``[B, dz]`` -> ``[B, B]``, ``T[i, j] = T(x_i, z_j)``."""
        return self.f(x) @ self.g(z).T

    def shifted(self, x: Tensor, z: Tensor, partners: Tensor) -> tuple[Tensor, Tensor]:
        """Joint scores ``[B]`` (``T(x_i, z_i)``) and ``[B, K]`` scores ``T(x_i, z_partners[i, k])``."""
        fx, gz = self.f(x), self.g(z)
        return (fx * gz).sum(-1), torch.einsum("be,bke->bk", fx, gz[partners])


#: Elements of one block of the ``[rows, B, H]`` hidden layer in :class:`_ReluPairScores` on the CPU: 512 KiB of
#: float32, so a block stays in cache and its allocation is reused rather than page-faulted afresh on every step.
_CPU_BLOCK_ELEMENTS = 2**17


class _ReluPairScores(torch.autograd.Function):
    """``T[i, j] = relu(hx_i + hz_j) · w + b`` for all pairs, one block of rows at a time.

    The autograd of the broadcast version keeps three ``[B, B, H]`` tensors per step (the sum,
    the ReLU output, the gradient); on the CPU each is a fresh multi-megabyte allocation that the
    allocator returns to the OS, and page-faulting it back in dominated the step (measured ~4000
    faults per step at B = H = 128). Here each block of rows ``[r, B, H]`` is formed, used and
    dropped, in the forward pass and again (recomputed) in the backward pass; only ``hx``, ``hz``
    and ``w`` are saved. Same values as the broadcast version; first derivatives only.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, hx: Tensor, hz: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        """``hx`` ``[B, H]``, ``hz`` ``[B', H]``, ``weight`` ``[1, H]``, ``bias`` ``[1]`` -> ``[B, B']``."""
        ctx.save_for_backward(hx, hz, weight)
        scores = hx.new_empty(hx.shape[0], hz.shape[0])
        w = weight.view(-1)
        for rows in _row_blocks(hx, hz):
            hidden = torch.add(hx[rows].unsqueeze(1), hz).clamp_min_(0)  # [r, B', H]
            torch.matmul(hidden, w, out=scores[rows])
        return scores.add_(bias)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Gradients w.r.t. ``hx`` ``[B, H]``, ``hz`` ``[B', H]``, ``weight`` ``[1, H]``, ``bias`` ``[1]``."""
        hx, hz, weight = ctx.saved_tensors
        grad = grad.contiguous()  # [B, B']
        grad_hx, grad_hz = torch.empty_like(hx), torch.zeros_like(hz)
        grad_w = torch.zeros_like(weight.view(-1))
        for rows in _row_blocks(hx, hz):
            hidden = torch.add(hx[rows].unsqueeze(1), hz).clamp_min_(0)  # [r, B', H]
            block = grad[rows]  # [r, B']
            grad_w.addmv_(hidden.flatten(0, 1).T, block.flatten())
            # d relu / d pre-activation is sign(hidden) (hidden >= 0), scaled by dT/d hidden = grad · w.
            masked = hidden.sign_().mul_(block.unsqueeze(2))  # [r, B', H], grad / w
            torch.sum(masked, dim=1, out=grad_hx[rows])
            grad_hz += masked.sum(dim=0)
        w = weight.view(-1)
        return grad_hx.mul_(w), grad_hz.mul_(w), grad_w.view_as(weight), grad.sum().view(1)


def _row_blocks(hx: Tensor, hz: Tensor) -> list[slice]:
    """Slices of the rows of ``hx`` ``[B, H]`` whose ``[rows, B', H]`` block fits :data:`_CPU_BLOCK_ELEMENTS` (CPU),
    or one slice of all rows on an accelerator (whose caching allocator makes one big block cheap)."""
    n = hx.shape[0]
    rows = max(1, _CPU_BLOCK_ELEMENTS // hz.numel()) if hx.device.type == "cpu" else n
    return [slice(start, start + rows) for start in range(0, n, rows)]


class ConcatCritic(nn.Module):
    """Concatenated critic ``T(x, z) = h([x, z])``, an MLP ``[B, dx + dz] -> [B]`` (``layers >= 1``).

    The first layer is kept as two maps ``W_x`` (with the bias) and ``W_z`` whose sum is the
    affine map of the concatenation, so all B×B pairs are scored with a broadcast, not a
    ``[B, B, dx + dz]`` copy of the inputs. With one hidden layer and ReLU (the default of the
    bounds) the all-pairs scores go through :class:`_ReluPairScores`, which never holds the
    ``[B, B, H]`` hidden layer (same values, first derivatives only).
    """

    def __init__(
        self,
        *,
        x_dim: int | None = None,
        z_dim: int | None = None,
        hidden: int = 256,
        layers: int = 2,
        activation: Activation = "relu",
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"a concat critic needs layers >= 1 (a linear one cannot tell pairs apart), got {layers}")
        self.first_x = _linear(x_dim, hidden)
        self.first_z = _linear(z_dim, hidden, bias=False)
        self.rest = nn.Sequential(_ACTIVATIONS[activation](), *mlp(hidden, hidden, layers - 1, 1, activation))
        self.fused = layers == 1 and activation == "relu"

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """All pair scores: ``x`` ``[B, dx]``, ``z`` ``[B, dz]`` -> ``[B, B]``, ``T[i, j] = h([x_i, z_j])``."""
        hx, hz = self.first_x(x), self.first_z(z)  # [B, H] each
        if self.fused:
            out = self.rest[1]
            scores: Tensor = _ReluPairScores.apply(hx, hz, out.weight, out.bias)
            return scores
        return self.rest(hx.unsqueeze(1) + hz.unsqueeze(0)).squeeze(-1)  # [B, B, H] -> [B, B]

    def shifted(self, x: Tensor, z: Tensor, partners: Tensor) -> tuple[Tensor, Tensor]:
        """Joint scores ``[B]`` (``T(x_i, z_i)``) and ``[B, K]`` scores ``T(x_i, z_partners[i, k])``."""
        hx, hz = self.first_x(x), self.first_z(z)
        joint = self.rest(hx + hz).squeeze(-1)
        return joint, self.rest(hx.unsqueeze(1) + hz[partners]).squeeze(-1)  # [B, K, H] -> [B, K]


def build_critic(
    critic: CriticKind,
    *,
    x_dim: int | None,
    z_dim: int | None,
    hidden: int,
    layers: int,
    embed_dim: int,
    activation: Activation,
) -> SeparableCritic | ConcatCritic:
    """The critic named ``critic`` (``"separable"`` or ``"concat"``).

    ``embed_dim`` applies to the separable critic only. ``x_dim``/``z_dim`` build it eagerly;
    ``None`` infers them at the first call. The ranges and choices of the options are declared
    (and checked) by :mod:`mireg.critic_options`.
    """
    if critic == "separable":
        return SeparableCritic(
            x_dim=x_dim, z_dim=z_dim, hidden=hidden, layers=layers, embed_dim=embed_dim, activation=activation
        )
    if critic == "concat":
        return ConcatCritic(x_dim=x_dim, z_dim=z_dim, hidden=hidden, layers=layers, activation=activation)
    raise ValueError(f"critic must be 'separable' or 'concat', got {critic!r}")


def materialize(module: nn.Module, x: Tensor, z: Tensor) -> None:
    """Run ``module`` once on ``x`` ``[B, dx]``, ``z`` ``[B, dz]`` without gradient, so lazy layers
    take their sizes, device and dtype (a dry run; parameters are materialised in place)."""
    with torch.no_grad():
        module(x, z)


def pair_scores(
    critic: SeparableCritic | ConcatCritic, x: Tensor, z: Tensor, negatives: int | None = None
) -> tuple[Tensor, Tensor]:
    """Scores of the B joint pairs and of product-of-marginals pairs taken from the batch.

    Args:
        critic: a :class:`SeparableCritic` or :class:`ConcatCritic`.
        x: ``[B, dx]``; z: ``[B, dz]``, row i of both is one joint sample.
        negatives: ``None`` (or ``>= B - 1``) for all B(B-1) off-diagonal pairs; ``K`` for the K
            pairs ``(x_i, z_{(i+s) mod B})``, s = 1..K, per row (off-diagonal too): cheaper by a
            factor ~B/K for the concat critic, at the cost of a noisier marginal term.
    Returns:
        ``joint`` ``[B]`` with ``T(x_i, z_i)`` and ``negative`` ``[B, K]`` (``K = B - 1`` for all
        pairs; row i holds pairs of x_i).
    """
    b = x.shape[0]
    if negatives is None or negatives >= b - 1:
        scores = critic(x, z)
        return scores.diagonal(), off_diagonal(scores).view(b, b - 1)
    shifts = torch.arange(1, negatives + 1, device=x.device)
    partners = (torch.arange(b, device=x.device).unsqueeze(1) + shifts) % b  # [B, K]
    joint, negative = critic.shifted(x, z, partners)
    return joint, negative


def _input_layers(critic: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """The first layers of the x and z sides of ``critic``; ``None`` for a critic of another kind."""
    if isinstance(critic, SeparableCritic):
        return critic.f[0], critic.g[0]
    if isinstance(critic, ConcatCritic):
        return critic.first_x, critic.first_z
    return None


def check_critic_inputs(critic: nn.Module, x: Tensor, z: Tensor, name: str) -> None:
    """Refuse ``x`` ``[B, dx]`` and ``z`` ``[B, dz]`` whose widths, dtype or device differ from those the
    critic was built for (from ``x_dim``/``z_dim`` or its first call), instead of failing inside a matmul.
    A critic other than :class:`SeparableCritic` and :class:`ConcatCritic` (a stand-in) is not checked."""
    layers = _input_layers(critic)
    if layers is None:
        return
    autocast = torch.is_autocast_enabled(x.device.type)  # autocast casts inside the layers itself
    for label, layer, value in zip(("x", "z"), layers, (x, z), strict=True):
        weight: Tensor = layer.weight  # type: ignore[assignment]
        # A lazy layer is sized by the first call (its in_features stays 0 even after loading a state).
        if not isinstance(weight, nn.parameter.UninitializedParameter) and weight.shape[-1] != value.shape[1]:
            raise ValueError(
                f"this {name} critic was built for {label} of width {weight.shape[-1]} (flattened; from {label}_dim or "
                f"its first call), got {label} of width {value.shape[1]}; use one estimator per pair of variables "
                "(a fresh one for other widths)"
            )
        if (value.dtype != weight.dtype and not autocast) or value.device != weight.device:
            raise ValueError(
                f"{label} is {value.dtype} on {value.device} but this {name} critic's parameters are {weight.dtype} "
                f"on {weight.device}; convert the inputs ({label}.to({weight.dtype})) or move the estimator before its "
                f"first step (mi.to({value.dtype}) / mi.to({str(value.device)!r}))"
            )


def off_diagonal(scores: Tensor) -> Tensor:
    """The ``B(B-1)`` off-diagonal entries of ``scores`` ``[B, B]`` as a flat tensor (row-major)."""
    b = scores.shape[0]
    # Dropping the last entry of the flattened matrix leaves B-1 rows of B+1 entries, each starting
    # with a diagonal entry: the classic no-index trick to drop the diagonal.
    return scores.flatten()[:-1].view(b - 1, b + 1)[:, 1:].flatten()


def log_mean_exp(scores: Tensor) -> Tensor:
    """``log mean exp`` over all entries of ``scores`` (any shape), a 0-dim tensor (stable)."""
    return torch.logsumexp(scores.flatten(), dim=0) - math.log(scores.numel())


class CriticEstimator(MIGradientEstimator):
    """Base of the MI estimators that train a critic T(x, z) on in-batch pairs (MINE, NWJ, InfoNCE,
    JSD): it builds the critic from the shared options and turns the pair scores into the value.

    Subclasses declare the options (and their own defaults) in their ``__init__`` signature, pass
    them on to this one, and implement :meth:`bound`. ``forward`` (the quantity to maximise) and
    ``estimate`` (its value) both return ``bound`` of the batch unless a subclass changes the
    gradient of ``forward`` (MINE's bias correction).
    """

    def __init__(
        self,
        *,
        critic: CriticKind,
        hidden: int,
        layers: int,
        embed_dim: int,
        activation: Activation,
        x_dim: int | None,
        z_dim: int | None,
        negatives: int | None,
    ) -> None:
        super().__init__()
        self.critic, self.hidden, self.layers, self.embed_dim = critic, hidden, layers, embed_dim
        self.activation, self.x_dim, self.z_dim, self.negatives = activation, x_dim, z_dim, negatives
        self.critic_net = build_critic(
            critic, x_dim=x_dim, z_dim=z_dim, hidden=hidden, layers=layers, embed_dim=embed_dim, activation=activation
        )

    def scores(self, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """``joint`` ``[B]`` and ``negative`` ``[B, K]`` critic scores of the batch (:func:`pair_scores`)."""
        check_critic_inputs(self.critic_net, x, z, type(self).name)
        return pair_scores(self.critic_net, x, z, self.negatives)

    def bound(self, joint: Tensor, negative: Tensor) -> Tensor:
        """The estimator's value (0-dim, nats) from the scores of :meth:`scores`."""
        raise NotImplementedError(f"{type(self).__name__} must implement bound(joint, negative)")

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """The value of the batch, to maximise; ``x`` ``[B, dx]``, ``z`` ``[B, dz]``."""
        return self.bound(*self.scores(x, z))

    def _estimate(self, x: Tensor, z: Tensor) -> Tensor:
        """The value of the batch in nats (0-dim, differentiable); ``x`` ``[B, dx]``, ``z`` ``[B, dz]``."""
        return self.bound(*self.scores(x, z))
