"""The Deep InfoMax task (paper §4.2, Table 1): maximise I(·; Y) of an image encoder, unsupervised.

A DCGAN-style encoder (:mod:`mireg.tasks.dim_models`) maps an image x to conv features h, an
FC layer and the representation Y. The ``[estimator]`` block gives the information term; the
encoder ascends ``mi(a, Y)`` where ``pair`` chooses the other side a:

* ``pair = "conv"``: a = h, the flattened conv features. With a critic-based estimator (``jsd``,
  ``infonce``) this is global DIM (Hjelm et al. 2019): a critic scores (h_i, Y_j) pairs, the
  off-diagonal ones as in-batch negatives, and is trained jointly (the ``critic`` group). With
  ``mige`` it is Circumstance II, ∇I(h; Y) = ∇H(h) + ∇H(Y) − ∇H(h, Y) (both sides carry gradients).
* ``pair = "input"``: a = x, the image. With ``mige`` this is Circumstance I, the paper's DIM
  setting: ∇I(x; Y) = ∇H(Y) − ∇H(x, Y), the data side randomly projected when the estimator's
  ``projection_dim`` is set (scalable SSGE).

``prior_matching`` adds DIM's adversarial prior term: a discriminator (its own ``prior``
parameter group, ``train.critic_lr``) tells Y from draws of the uniform prior on [0, 1]^dim(Y),
and the encoder minimises ``prior_weight`` times the non-saturating generator loss −log D(Y).

Evaluation (:mod:`mireg.tasks.probes`) freezes the encoder and trains one small classifier per
layer (conv, fc, y); validation accuracy picks each probe's epoch, test accuracy is reported.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mireg.data import Splits
from mireg.distributed import rand_like_global
from mireg.estimators import MIGradientEstimator
from mireg.tasks.base import StepOutput, Task
from mireg.tasks.dim_models import Encoder, PriorDiscriminator, Variant, image_shape
from mireg.tasks.probes import ProbeResult, probe_layers

Pair = Literal["input", "conv"]
#: Layers the probes evaluate, in the order of Table 1.
LAYERS = ("conv", "fc", "y")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DIMModel:
    """The ``[model]`` block of the DIM task.

    Options:
      variant: conv stack: "dcgan" (three 4×4 stride-2 convs, 32×32 inputs), "small" (8×8 digits) or "auto"
      channels: output channels of the three convolutions (DIM: [64, 128, 256])
      fc_dim: width of the fully connected layer (DIM: 1024)
      y_dim: width of the representation Y (DIM: 64)
    """

    name: ClassVar[str] = "model"
    variant: Variant = "auto"
    channels: list[int] | tuple[int, ...] = (64, 128, 256)
    fc_dim: int = 1024
    y_dim: int = 64

    def __post_init__(self) -> None:
        if self.variant not in ("auto", "dcgan", "small"):
            raise ValueError(f"variant must be 'auto', 'dcgan' or 'small', got {self.variant!r}")
        if len(self.channels) != 3 or any(not isinstance(c, int) or c < 1 for c in self.channels):
            raise ValueError(f"channels must be 3 positive integers, got {list(self.channels)}")
        if self.fc_dim < 1 or self.y_dim < 1:
            raise ValueError(f"fc_dim and y_dim must be positive, got {self.fc_dim} and {self.y_dim}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DIMEval:
    """The ``[eval]`` block of the DIM task: the probe classifiers trained on frozen features.

    Options:
      hidden: units of the probe's hidden layer (paper: 200)
      dropout: dropout rate of the probe (paper: 0.1)
      epochs: probe training epochs; the epoch with the best validation accuracy is reported
      lr: Adam learning rate of the probes
      batch_size: rows per probe step
      seed: seed of probe initialisation, dropout and batch order
    """

    name: ClassVar[str] = "eval"
    hidden: int = 200
    dropout: float = 0.1
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.hidden, self.epochs, self.batch_size) < 1:
            raise ValueError("hidden, epochs and batch_size of the probes must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


class DIMNetwork(nn.Module):
    """The encoder, the MI estimator (with its critic, if any) and the optional prior discriminator."""

    def __init__(
        self, input_dim: int, options: DIMModel, estimator: MIGradientEstimator, prior_matching: bool
    ) -> None:
        super().__init__()
        shape = image_shape(input_dim)
        self.encoder = Encoder(shape, tuple(options.channels), options.fc_dim, options.y_dim, options.variant)
        self.estimator = estimator
        self.prior = PriorDiscriminator(options.y_dim) if prior_matching else None


class DIM(Task):
    """Deep InfoMax: an image encoder maximising the [estimator]'s I(conv features or x; Y), probes per layer.

    Options:
      pair: what Y is paired with: "conv" (global DIM; MIGE Circumstance II) or "input" (x; MIGE Circumstance I)
      prior_matching: add DIM's adversarial matching of Y to the uniform prior on [0, 1]^dim(Y)
      prior_weight: weight of the prior-matching term in the encoder's loss (DIM: 0.1)
    """

    name = "dim"
    Model = DIMModel
    Eval = DIMEval
    headline = "test_acc_y"

    def __init__(self, *, pair: Pair = "conv", prior_matching: bool = False, prior_weight: float = 0.1) -> None:
        if pair not in ("input", "conv"):
            raise ValueError(f"pair must be 'input' or 'conv', got {pair!r}")
        if prior_weight < 0:
            raise ValueError(f"prior_weight must be >= 0, got {prior_weight}")
        self.pair: Pair = pair
        self.prior_matching = prior_matching
        self.prior_weight = prior_weight
        self._probes: tuple[str, dict[str, ProbeResult]] | None = None  # (encoder digest, results)

    def uses_estimator(self) -> bool:
        return True

    def describe(self) -> dict[str, Any]:
        return {"pair": self.pair, "prior_matching": self.prior_matching}

    def build(
        self,
        data: Splits,
        model: Any,
        estimator: MIGradientEstimator | None,
        *,
        device: torch.device,
        dtype: torch.dtype,
    ) -> DIMNetwork:
        if estimator is None:
            raise ValueError("the DIM task needs an [estimator] block (jsd, infonce, mige, ...)")
        network = DIMNetwork(data.input_dim, model, estimator, self.prior_matching).to(device=device, dtype=dtype)
        if any(isinstance(p, nn.parameter.UninitializedParameter) for p in estimator.parameters()):
            network.eval()  # materialise a lazy critic without touching BatchNorm statistics
            with torch.no_grad():
                x = data.train.x[:2].to(device=device, dtype=dtype)
                features = network.encoder(x)
                estimator(x if self.pair == "input" else features.conv, features.y)
            network.train()
        return network

    def parameter_groups(self, module: nn.Module) -> dict[str, list[nn.Parameter]]:
        assert isinstance(module, DIMNetwork)
        groups = {"model": list(module.encoder.parameters())}
        critic = [p for p in module.estimator.parameters() if p.requires_grad]
        if critic:
            groups["critic"] = critic
        if module.prior is not None:
            groups["prior"] = list(module.prior.parameters())
        return groups

    def step(self, module: nn.Module, x: Tensor, y: Tensor) -> StepOutput:
        """Losses of one unlabelled batch ``x`` ``[B, C·H·W]`` (``y`` is ignored): the encoder descends
        −mi(a, Y) (+ prior term), the critic descends −mi(a, Y), the prior discriminator its GAN loss."""
        assert isinstance(module, DIMNetwork)
        features = module.encoder(x)
        info = module.estimator(x if self.pair == "input" else features.conv, features.y)
        loss = -info
        losses: dict[str, Tensor] = {}
        if any(p.requires_grad for p in module.estimator.parameters()):
            losses["critic"] = -info
        metrics = {"mi_term": info.detach()}
        if module.prior is not None:
            generator = F.softplus(-module.prior(features.y)).mean()  # −log D(Y), non-saturating
            loss = loss + self.prior_weight * generator
            prior_draws = rand_like_global(features.y)
            discriminator = (
                F.softplus(-module.prior(prior_draws)).mean() + F.softplus(module.prior(features.y.detach())).mean()
            )
            losses["prior"] = discriminator
            metrics["prior_generator"] = generator.detach()
            metrics["prior_discriminator"] = discriminator.detach()
        losses["model"] = loss
        metrics["loss"] = loss.detach()
        return StepOutput(losses, metrics)

    def probes(self, module: DIMNetwork, data: Splits, options: DIMEval) -> dict[str, ProbeResult]:
        """Probe results per layer (``conv``, ``fc``, ``y``) for the encoder as it is now.

        The results are kept for the encoder's current weights, so the test evaluation after the
        last epoch reuses the probes its validation evaluation trained.
        """
        digest = _digest(module.encoder, options)
        if self._probes is None or self._probes[0] != digest:
            module.encoder.eval()
            results = probe_layers(
                lambda x: module.encoder(x)._asdict(),
                data,
                hidden=options.hidden,
                dropout=options.dropout,
                epochs=options.epochs,
                lr=options.lr,
                batch_size=options.batch_size,
                seed=options.seed,
            )
            self._probes = (digest, results)
        return self._probes[1]

    def evaluate(self, module: nn.Module, data: Splits, split: str, options: Any) -> dict[str, float]:
        """``{split}_acc_{layer}`` for the three layers; on ``"test"`` also the probe epochs chosen on val."""
        assert isinstance(module, DIMNetwork)
        results = self.probes(module, data, options)
        metrics = {f"{split}_acc_{layer}": getattr(results[layer], split) for layer in LAYERS}
        if split == "test":
            metrics.update({f"probe_epoch_{layer}": float(results[layer].epoch) for layer in LAYERS})
        return metrics


def _digest(encoder: nn.Module, options: DIMEval) -> str:
    """A fingerprint of the encoder's weights and buffers and the probe options."""
    hasher = hashlib.sha1(repr(options).encode(), usedforsecurity=False)
    for name, tensor in encoder.state_dict().items():
        hasher.update(name.encode())
        hasher.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return hasher.hexdigest()
