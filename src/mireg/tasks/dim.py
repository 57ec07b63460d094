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
Every ``eval.mi_every`` epochs the estimator's I(a; Y) on the first ``eval.mi_rows`` validation
rows is logged as ``mi_y`` (when the estimator gives a value).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mireg.data import Splits
from mireg.distributed import rand_like_global
from mireg.estimators import MIGradientEstimator
from mireg.options import PositiveInt, Range, check_options, check_record
from mireg.tasks.base import StepOutput, Task, eval_rows, materialise
from mireg.tasks.dim_models import Encoder, PriorDiscriminator, Variant, image_shape
from mireg.tasks.probes import probe_layers

Pair = Literal["input", "conv"]
#: Layers the probes evaluate, in the order of Table 1.
LAYERS = ("conv", "fc", "y")


@attrs.frozen(kw_only=True)
class DIMModelOptions:
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
    fc_dim: PositiveInt = 1024
    y_dim: PositiveInt = 64

    def __attrs_post_init__(self) -> None:
        check_record(self)
        if len(self.channels) != 3 or any(not isinstance(c, int) or c < 1 for c in self.channels):
            raise ValueError(f"channels must be 3 positive integers, got {list(self.channels)}")


@attrs.frozen(kw_only=True)
class DIMEvalOptions:
    """The ``[eval]`` block of the DIM task: the probe classifiers trained on frozen features.

    Options:
      hidden: units of the probe's hidden layer (paper: 200)
      dropout: dropout rate of the probe (paper: 0.1)
      epochs: probe training epochs; the epoch with the best validation accuracy is reported
      lr: Adam learning rate of the probes
      batch_size: rows per probe step
      seed: seed of probe initialisation, dropout and batch order
      mi_every: epochs between two logged values of the estimator's I(·; Y) (0: none)
      mi_rows: validation rows of the fixed batch that value is computed on
    """

    name: ClassVar[str] = "eval"
    hidden: PositiveInt = 200
    dropout: Annotated[float, Range(0, 1, high_open=True)] = 0.1
    epochs: PositiveInt = 20
    lr: Annotated[float, Range(0, low_open=True)] = 1e-3
    batch_size: PositiveInt = 128
    seed: int = 0
    mi_every: Annotated[int, Range(0)] = 0
    mi_rows: Annotated[int, Range(2)] = 512

    def __attrs_post_init__(self) -> None:
        check_record(self)


class DIMNetwork(nn.Module):
    """The encoder, the MI estimator (with its critic, if any) and the optional prior discriminator."""

    def __init__(
        self, input_dim: int, options: DIMModelOptions, estimator: MIGradientEstimator, prior_matching: bool
    ) -> None:
        super().__init__()
        shape = image_shape(input_dim)
        self.encoder = Encoder(shape, tuple(options.channels), options.fc_dim, options.y_dim, options.variant)
        self.estimator = estimator
        self.prior = PriorDiscriminator(options.y_dim) if prior_matching else None


class DIM(Task[DIMNetwork, DIMModelOptions, DIMEvalOptions]):
    """Deep InfoMax: an image encoder maximising the [estimator]'s I(conv features or x; Y), probes per layer.

    Options:
      pair: what Y is paired with: "conv" (global DIM; MIGE Circumstance II) or "input" (x; MIGE Circumstance I)
      prior_matching: add DIM's adversarial matching of Y to the uniform prior on [0, 1]^dim(Y)
      prior_weight: weight of the prior-matching term in the encoder's loss (DIM: 0.1)
    """

    name = "dim"
    model_options = DIMModelOptions
    eval_options = DIMEvalOptions
    headline = "test_acc_y"
    reported = ("_acc_conv", "_acc_fc", "_acc_y")

    def __init__(
        self, *, pair: Pair = "conv", prior_matching: bool = False, prior_weight: Annotated[float, Range(0)] = 0.1
    ) -> None:
        check_options(DIM, locals())
        self.pair: Pair = pair
        self.prior_matching = prior_matching
        self.prior_weight = prior_weight

    def uses_estimator(self) -> bool:
        return True

    def describe(self) -> dict[str, Any]:
        return {"pair": self.pair, "prior_matching": self.prior_matching}

    def build(
        self,
        data: Splits,
        model: DIMModelOptions,
        estimator: MIGradientEstimator | None,
        *,
        device: torch.device,
        dtype: torch.dtype,
    ) -> DIMNetwork:
        if estimator is None:
            raise ValueError("the DIM task needs an [estimator] block (jsd, infonce, mige, ...)")
        network = DIMNetwork(data.input_dim, model, estimator, self.prior_matching).to(device=device, dtype=dtype)
        x = data.train.x[:2].to(device=device, dtype=dtype)
        materialise(estimator, network, lambda: self._pair(network, x))
        return network

    def _pair(self, module: DIMNetwork, x: Tensor) -> tuple[Tensor, Tensor]:
        """The two sides ``(a, Y)`` of the information term for images ``x`` ``[B, C·H·W]``."""
        features = module.encoder(x)
        return (x if self.pair == "input" else features.conv), features.y

    def parameter_groups(self, module: DIMNetwork) -> dict[str, list[nn.Parameter]]:
        groups = {"model": list(module.encoder.parameters())}
        critic = [p for p in module.estimator.parameters() if p.requires_grad]
        if critic:
            groups["critic"] = critic
        if module.prior is not None:
            groups["prior"] = list(module.prior.parameters())
        return groups

    def step(self, module: DIMNetwork, x: Tensor, y: Tensor) -> StepOutput:
        """Losses of one unlabelled batch ``x`` ``[B, C·H·W]`` (``y`` is ignored): the encoder descends
        −mi(a, Y) (+ prior term), the critic its ``training_loss`` (−mi(a, Y) for a bound), the prior
        discriminator its GAN loss."""
        features = module.encoder(x)
        a = x if self.pair == "input" else features.conv
        surrogate = module.estimator(a, features.y)
        loss = -surrogate
        losses: dict[str, Tensor] = {}
        if any(p.requires_grad for p in module.estimator.parameters()):
            losses["critic"] = module.estimator.training_loss(a, features.y, value=surrogate)
        metrics = {"mi_surrogate": surrogate.detach()}
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

    def evaluate(
        self, module: DIMNetwork, data: Splits, splits: Sequence[str], options: DIMEvalOptions
    ) -> dict[str, float]:
        """``{split}_acc_{layer}`` for the three layers and each split, from one set of probes trained
        on the encoder as it is now; with ``"test"`` also the probe epochs chosen on val."""
        module.encoder.eval()
        results = probe_layers(lambda x: module.encoder(x)._asdict(), data, options)
        metrics = {f"{split}_acc_{layer}": getattr(results[layer], split) for split in splits for layer in LAYERS}
        if "test" in splits:
            metrics.update({f"probe_epoch_{layer}": float(results[layer].epoch) for layer in LAYERS})
        return metrics

    def information_every(self, options: DIMEvalOptions) -> int:
        return options.mi_every

    @torch.no_grad()
    def information(self, module: DIMNetwork, data: Splits, options: DIMEvalOptions) -> dict[str, float]:
        """``mi_y``: the estimator's I(a; Y) on the first ``mi_rows`` validation rows (this rank's slice of
        them under torch.distributed), when it gives a value."""
        value = module.estimator.estimate(*self._pair(module, data.val.x[eval_rows(options.mi_rows)[1]]))
        return {} if value is None else {"mi_y": float(value)}
