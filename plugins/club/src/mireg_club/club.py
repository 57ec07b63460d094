"""CLUB (Cheng et al. 2020): a contrastive log-ratio upper bound on MI with a Gaussian variational q(z|x)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mireg.critics import mlp
from mireg.estimators import MIGradientEstimator, check_pair


class _LazyOutput(nn.LazyLinear):
    """A linear layer ``[B, H] -> [B, dz]`` whose ``H`` and ``dz`` (the width of z) are read from the first call."""

    cls_to_become = None  # type: ignore[assignment]  # stay this class: its forward takes z too

    def __init__(self) -> None:
        super().__init__(0)

    def initialize_parameters(self, hidden: Tensor, z: Tensor) -> None:  # type: ignore[override]
        """Take ``dz`` from ``z`` ``[B, dz]`` and ``H`` from ``hidden`` ``[B, H]``, then materialise."""
        if self.has_uninitialized_params():
            self.out_features = z.shape[-1]
        super().initialize_parameters(hidden)

    def forward(self, hidden: Tensor, z: Tensor) -> Tensor:  # type: ignore[override]
        """``hidden`` ``[B, H]`` -> ``[B, dz]``; ``z`` ``[B, dz]`` only sizes the layer at the first call."""
        return super().forward(hidden)


class GaussianConditional(nn.Module):
    """q(z|x) = N(μ(x), diag exp(ℓ(x))): two ReLU MLPs (mean, log-variance) ``[B, dx] -> [B, dz]``.

    ``dx`` is ``x_dim`` or read from the first call, ``dz`` always from the first call's ``z``.
    """

    def __init__(self, *, x_dim: int | None, hidden: int, layers: int) -> None:
        super().__init__()
        if hidden < 1 or layers < 1:
            raise ValueError(f"hidden and layers must be positive integers, got {hidden} and {layers}")
        self.mean_body = nn.Sequential(*mlp(x_dim, hidden, layers - 1, hidden, "relu"), nn.ReLU())
        self.log_var_body = nn.Sequential(*mlp(x_dim, hidden, layers - 1, hidden, "relu"), nn.ReLU())
        self.mean_out, self.log_var_out = _LazyOutput(), _LazyOutput()

    def forward(self, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(·|x), each ``[B, dz]``, for ``x`` ``[B, dx]`` (``z`` ``[B, dz]`` sizes them)."""
        dtype = self.mean_out.weight.dtype  # also set while the parameter is not materialised
        if x.dtype != dtype or z.dtype != dtype:
            raise ValueError(
                f"CLUB's q(z|x) holds {dtype} parameters, got x {x.dtype} and z {z.dtype}: pass {dtype} "
                f"tensors, or move the estimator to their dtype with .to(dtype) before its first call"
            )
        return self.mean_out(self.mean_body(x), z), self.log_var_out(self.log_var_body(x), z)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """Mean over the batch of log q(z_i | x_i) in nats (0-dim); ``x`` ``[B, dx]``, ``z`` ``[B, dz]``."""
        mean, log_var = self(x, z)
        return -0.5 * ((z - mean).pow(2) / log_var.exp() + log_var + math.log(2 * math.pi)).sum(-1).mean()


class CLUB(MIGradientEstimator):
    """CLUB: contrastive log-ratio upper bound on I(x; z) with a Gaussian q(z|x) fitted by likelihood.

    With q(z|x) = N(μ(x), diag σ²(x)) and a batch of B pairs (Cheng et al. 2020)::

        I_CLUB = mean_i log q(z_i|x_i) - mean_i mean_{j≠i} log q(z_j|x_i)
               = mean_i sum_k [mean_{j≠i} (z_jk - μ_ik)² - (z_ik - μ_ik)²] / (2 σ²_ik)

    It is an upper bound on I(x; z) when q is close to p(z|x) (exactly: when KL(p(x,z) || q(z|x)p(x))
    <= KL(p(x)p(z) || q(z|x)p(x))), so q must be fitted first and kept fitted: its parameters
    descend :meth:`training_loss`, the negative log-likelihood of z given x, not the bound.
    ``forward`` returns I_CLUB (differentiable w.r.t. x and z: an encoder DEScends it, as the
    Information Bottleneck does); ``estimate`` returns its value in nats (0-dim tensor). The
    mean over j ≠ i is taken from the batch sums of z and z², O(B·dz), with no ``[B, B, dz]`` tensor.
    ``mireg.estimate_mi`` fits q with early stopping on the held-out likelihood and reports the bound
    on test rows (measured in ``benchmarks/finite_data.py``).

    Options:
      hidden: width of the hidden layers of the mean and log-variance networks of q(z|x)
      layers: number of hidden layers of each network
      x_dim: flattened width of x, to size the first layers eagerly (None: inferred at the first call)
    """

    name = "club"
    references = ("Cheng et al., CLUB: A Contrastive Log-ratio Upper Bound of Mutual Information, ICML 2020",)

    def __init__(self, *, hidden: int = 64, layers: int = 1, x_dim: int | None = None) -> None:
        super().__init__()
        self.hidden, self.layers, self.x_dim = hidden, layers, x_dim
        self.q = GaussianConditional(x_dim=x_dim, hidden=hidden, layers=layers)

    def negative_squares(self, z: Tensor, mean: Tensor) -> Tensor:
        """``[B, dz]``: mean over j ≠ i of (z_jk - μ_ik)², the product-of-marginals term, from
        ``z`` and ``mean`` ``[B, dz]``."""
        b = z.shape[0]
        others = (z.sum(0) - z) / (b - 1)  # mean of z_j over j ≠ i
        spread = (z.pow(2).sum(0) - z.pow(2)) / (b - 1) - others.pow(2)  # their variance
        return spread.clamp_min(0) + (others - mean).pow(2)

    def _bound(self, x: Tensor, z: Tensor) -> Tensor:
        mean, log_var = self.q(x, z)
        difference = self.negative_squares(z, mean) - (z - mean).pow(2)
        return (0.5 * difference / log_var.exp()).sum(-1).mean()

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """I_CLUB of the batch (0-dim; an encoder descends it); ``x`` ``[B, dx]``, ``z`` ``[B, dz]``."""
        return self._bound(x, z)

    def _estimate(self, x: Tensor, z: Tensor) -> Tensor:
        """I_CLUB of the batch in nats (0-dim, differentiable); ``x`` ``[B, dx]``, ``z`` ``[B, dz]``."""
        return self._bound(x, z)

    def training_loss(self, x: Tensor, z: Tensor, value: Tensor | None = None) -> Tensor:
        """The negative log-likelihood -mean_i log q(z_i|x_i) (0-dim, nats) that q descends; ``x`` ``[B, ...]``,
        ``z`` ``[B, ...]``. ``value`` (a forward value computed by the caller) is not needed here."""
        a, b = check_pair(x, z)
        return -self.q.log_likelihood(a, b)


class CLUBSample(CLUB):
    """CLUB-S: CLUB with one random negative z_{(i+s) mod B} per row instead of the mean over all j ≠ i.

    Same q(z|x), same training loss; the product-of-marginals term uses the pairs (x_i, z_{(i+s) mod B})
    for one random shift s in 1..B-1 per call (torch's global generator): an unbiased, noisier
    estimate of I_CLUB (Cheng et al.'s sampled variant, with a shift so no pair is its own negative).

    Options:
      hidden: width of the hidden layers of the mean and log-variance networks of q(z|x)
      layers: number of hidden layers of each network
      x_dim: flattened width of x, to size the first layers eagerly (None: inferred at the first call)
    """

    name = "club-sample"

    def negative_squares(self, z: Tensor, mean: Tensor) -> Tensor:
        """``[B, dz]``: (z_{(i+s) mod B, k} - μ_ik)² for one random shift s; ``z``, ``mean`` ``[B, dz]``."""
        shift = int(torch.randint(1, z.shape[0], ()))
        return (z.roll(-shift, dims=0) - mean).pow(2)
