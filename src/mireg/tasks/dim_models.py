"""Networks of the Deep InfoMax task: the DCGAN-style encoder and the prior-matching discriminator.

The encoder (Hjelm et al. 2019, used by the MIGE paper §4.2) maps an image ``[B, C, H, W]`` to
three nested representations, each evaluated by a probe classifier:

* ``conv``: the output of 3 convolutions with BatchNorm and ReLU, flattened;
* ``fc``: a fully connected layer (1024 units for CIFAR) with BatchNorm and ReLU;
* ``y``: the final linear layer, the representation Y (64 units for CIFAR).

Two conv stacks: ``dcgan`` (three 4×4 stride-2 convolutions, 32×32 -> 4×4) for CIFAR-sized
inputs and 28×28 MNIST (28 -> 14 -> 7 -> 3), and ``small`` (a 3×3 stride-1 convolution then two
4×4 stride-2 ones, 8×8 -> 2×2) for the 8×8 digits, where three halvings would leave a single pixel.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

from torch import Tensor, nn

Variant = Literal["auto", "dcgan", "small"]
#: Inputs narrower than this (in pixels) use the ``small`` conv stack under ``variant = "auto"``.
SMALL_BELOW = 16


def image_shape(input_dim: int) -> tuple[int, int, int]:
    """The ``(C, H, W)`` of flattened square images of width ``input_dim``: ``C`` is 1 or 3.

    The two readings never collide (``d`` and ``d / 3`` cannot both be squares), so 64 is a 1×8×8
    image and 3072 a 3×32×32 one. Raises :class:`ValueError` for any other width.
    """
    for channels in (1, 3):
        if input_dim % channels == 0:
            side = math.isqrt(input_dim // channels)
            if side * side * channels == input_dim:
                return channels, side, side
    raise ValueError(
        f"DIM needs square images with 1 or 3 channels, flattened; inputs of width {input_dim} are neither"
    )


class Features(NamedTuple):
    """The encoder's three representations of a batch of B images."""

    conv: Tensor  #: ``[B, channels[-1] · h · w]`` flattened conv features (h = w = 4 for 32×32 inputs, 3 for 28×28)
    fc: Tensor  #: ``[B, fc_dim]``
    y: Tensor  #: ``[B, y_dim]``, the representation Y


class Encoder(nn.Module):
    """DCGAN-style encoder ``[B, C, H, W] -> Features`` (3 conv + BN + ReLU, FC + BN + ReLU, linear).

    Args:
        shape: ``(C, H, W)`` of the input images.
        channels: output channels of the three convolutions (DIM: 64, 128, 256).
        fc_dim: width of the fully connected layer (DIM: 1024).
        y_dim: width of the representation Y (DIM: 64).
        variant: ``"dcgan"``, ``"small"`` or ``"auto"`` (``small`` below 16 pixels).
    """

    def __init__(
        self, shape: tuple[int, int, int], channels: tuple[int, ...], fc_dim: int, y_dim: int, variant: Variant
    ) -> None:
        super().__init__()
        if len(channels) != 3:
            raise ValueError(f"the DIM encoder has 3 convolutions, got channels {list(channels)}")
        c, h, w = shape
        if variant == "auto":
            variant = "small" if min(h, w) < SMALL_BELOW else "dcgan"
        # (kernel, stride, padding) of each convolution; 4×4/2/1 halves the side exactly.
        specs = [(4, 2, 1)] * 3 if variant == "dcgan" else [(3, 1, 1), (4, 2, 1), (4, 2, 1)]
        layers: list[nn.Module] = []
        width = c
        for out, (kernel, stride, padding) in zip(channels, specs, strict=True):
            layers += [nn.Conv2d(width, out, kernel, stride, padding, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            width = out
            h, w = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
        if h < 1 or w < 1:
            raise ValueError(f"images of shape {shape} are too small for the {variant!r} conv stack")
        self.variant: Variant = variant
        self.shape = shape
        self.conv = nn.Sequential(*layers, nn.Flatten())
        self.conv_dim = width * h * w
        self.fc = nn.Sequential(nn.Linear(self.conv_dim, fc_dim, bias=False), nn.BatchNorm1d(fc_dim), nn.ReLU())
        self.y = nn.Linear(fc_dim, y_dim)

    def forward(self, x: Tensor) -> Features:
        """The representations of ``x``: images ``[B, C, H, W]`` or flattened ``[B, C·H·W]``."""
        conv = self.conv(x.reshape(x.shape[0], *self.shape))
        fc = self.fc(conv)
        return Features(conv, fc, self.y(fc))


class PriorDiscriminator(nn.Module):
    """DIM's prior-matching discriminator ``[B, y_dim] -> [B]`` logits of "drawn from the prior".

    An MLP with hidden layers of 1000 and 200 units (Hjelm et al. 2019, appendix).
    """

    def __init__(self, y_dim: int, hidden: tuple[int, int] = (1000, 200)) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(y_dim, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], hidden[1]), nn.ReLU(), nn.Linear(hidden[1], 1)
        )

    def forward(self, y: Tensor) -> Tensor:
        return self.net(y).squeeze(-1)
