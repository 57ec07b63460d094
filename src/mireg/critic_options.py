"""The eight critic options shared by the critic-based MI estimators, declared and documented once.

:class:`ConcatCriticEstimator` (a concat critic by default: MINE, MINE-f) and
:class:`SeparableCriticEstimator` (a separable one: InfoNCE, JSD) differ only in three defaults.
A subclass adds its own options as keyword-only parameters and passes the rest on with
``**critic_options`` (see :mod:`mireg.options`), or takes no ``__init__`` at all.
"""

from __future__ import annotations

from typing import Annotated, Any

from mireg.critics import Activation, CriticEstimator, CriticKind
from mireg.options import PositiveInt, Range, check_options


class ConcatCriticEstimator(CriticEstimator):
    """A critic-based MI estimator with the shared critic options (concat critic by default).

    Options:
      critic: "concat" (MLP on [x, z]) or "separable" (f(x)ᵀg(z), one matmul for all pairs)
      hidden: width of the critic's hidden layers
      layers: number of hidden layers of the critic's MLPs
      embed_dim: output width of f and g (separable critic only)
      activation: hidden activation: relu, elu, gelu, silu, tanh or leaky_relu
      x_dim: flattened width of x, to build the critic eagerly (None: inferred at the first call)
      z_dim: flattened width of z, to build the critic eagerly (None: inferred at the first call)
      negatives: negative pairs per row, (x_i, z_(i+s) mod B) for s = 1..K; None: all B - 1 (default)
    """

    def __init__(
        self,
        *,
        critic: CriticKind = "concat",
        hidden: PositiveInt = 128,
        layers: Annotated[int, Range(0)] = 1,
        embed_dim: PositiveInt = 32,
        activation: Activation = "relu",
        x_dim: PositiveInt | None = None,
        z_dim: PositiveInt | None = None,
        negatives: PositiveInt | None = None,
    ) -> None:
        check_options(ConcatCriticEstimator, locals())
        super().__init__(
            critic=critic,
            hidden=hidden,
            layers=layers,
            embed_dim=embed_dim,
            activation=activation,
            x_dim=x_dim,
            z_dim=z_dim,
            negatives=negatives,
        )


class SeparableCriticEstimator(ConcatCriticEstimator):
    """A critic-based MI estimator whose critic defaults to a wider, separable one (two hidden layers)."""

    def __init__(
        self,
        *,
        critic: CriticKind = "separable",
        hidden: PositiveInt = 256,
        layers: Annotated[int, Range(0)] = 2,
        **critic_options: Any,
    ) -> None:
        super().__init__(critic=critic, hidden=hidden, layers=layers, **critic_options)
