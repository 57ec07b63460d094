"""The Information Bottleneck task (paper §4.3, eq. 7): minimise H(y|z) + β·I(x; z).

A Gaussian encoder q(z|x) = N(μ(x), diag σ²(x)) (an MLP giving μ and log σ², VIB's
784-1024-1024-K for MNIST) feeds a softmax decoder p(y|z) (one linear layer). The
information term depends on ``method``:

* ``baseline``: deterministic encoder z = μ(x), cross-entropy only;
* ``vib``: KL(q(z|x) ‖ N(0, I)), the variational upper bound of Alemi et al. (2017);
* ``mi``: the ``[estimator]`` block's ``mi(x, z)`` (MINE, MIGE, any registered estimator).
  Estimators declaring ``accepts_log_var`` (MIGE) receive the encoder's log-variances and use
  Circumstance III, ∇I = ∇H(z) − ∇H(z|x) with the analytic Gaussian conditional; those declaring
  ``accepts_mean`` receive its means too (MIGE: ∇H(z) from the batch's Gaussian mixture).
  The encoder descends β·mi(x, z); the estimator's own parameters (a critic) form the
  ``critic`` group, which ascends mi(x, z).

Test error follows VIB: the softmax averaged over ``eval.samples`` draws of z.

The information plane: every ``eval.mi_every`` epochs, on the first ``eval.mi_rows`` validation
rows, I(x; z) from the estimator's ``estimate`` (left out when it gives none) and
I(z; y) ≥ H(y) − CE, the decoder's cross-entropy (nats) subtracted from the empirical label entropy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mireg.data import Splits
from mireg.distributed import randn_like_global
from mireg.estimators import MIGradientEstimator
from mireg.options import PositiveInt, Range, check_options, check_record
from mireg.tasks.base import StepOutput, Task, eval_rows, materialise

Method = Literal["baseline", "vib", "mi"]


@attrs.frozen(kw_only=True)
class IBModelOptions:
    """The ``[model]`` block of the IB task.

    Options:
      hidden: widths of the encoder's hidden layers (VIB on MNIST: [1024, 1024])
      z_dim: width K of the representation z
      sigma_offset: σ = softplus(raw − sigma_offset), VIB's parameterisation (small initial σ)
    """

    name: ClassVar[str] = "model"
    hidden: list[int] | tuple[int, ...] = (256, 256)
    z_dim: PositiveInt = 32
    sigma_offset: float = 5.0

    def __attrs_post_init__(self) -> None:
        check_record(self)
        if any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must hold positive integer widths, got {list(self.hidden)}")


@attrs.frozen(kw_only=True)
class IBEvalOptions:
    """The ``[eval]`` block of the IB task.

    Options:
      samples: draws of z whose softmax outputs are averaged per input (VIB uses 12)
      batch_size: rows per evaluation batch
      mi_every: epochs between two information-plane points I(x; z), I(z; y) (0: none)
      mi_rows: validation rows of the fixed batch those MI values are computed on
    """

    name: ClassVar[str] = "eval"
    samples: PositiveInt = 12
    batch_size: PositiveInt = 1000
    mi_every: Annotated[int, Range(0)] = 0
    mi_rows: Annotated[int, Range(2)] = 512

    def __attrs_post_init__(self) -> None:
        check_record(self)


class IBNetwork(nn.Module):
    """Gaussian encoder ``[B, d] -> (μ, log σ²)`` (each ``[B, K]``), linear decoder ``[B, K] -> [B, C]``,
    and the MI estimator (or ``None``) as a submodule."""

    def __init__(
        self, input_dim: int, classes: int, options: IBModelOptions, estimator: MIGradientEstimator | None
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = input_dim
        for hidden in options.hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, 2 * options.z_dim))
        self.encoder = nn.Sequential(*layers)
        self.decoder = nn.Linear(options.z_dim, classes)
        self.estimator = estimator
        self.sigma_offset = options.sigma_offset

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x), each ``[B, K]``, for inputs ``[B, d]``."""
        mean, raw = self.encoder(x).chunk(2, dim=-1)
        sigma = F.softplus(raw - self.sigma_offset) + torch.finfo(raw.dtype).eps
        return mean, 2 * sigma.log()


class IB(Task[IBNetwork, IBModelOptions, IBEvalOptions]):
    """Information Bottleneck classifier: cross-entropy plus β times an information term on I(x; z).

    Options:
      method: "baseline" (deterministic, cross-entropy only), "vib" (KL to N(0, I)) or "mi" (the [estimator])
      beta: weight β of the information term (ignored by "baseline")
    """

    name = "ib"
    model_options = IBModelOptions
    eval_options = IBEvalOptions
    headline = "test_error"

    def __init__(self, *, method: Method = "mi", beta: Annotated[float, Range(0)] = 1e-3) -> None:
        check_options(IB, locals())
        self.method: Method = method
        self.beta = beta

    def uses_estimator(self) -> bool:
        return self.method == "mi"

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "beta": self.beta if self.method != "baseline" else None}

    def build(
        self,
        data: Splits,
        model: IBModelOptions,
        estimator: MIGradientEstimator | None,
        *,
        device: torch.device,
        dtype: torch.dtype,
    ) -> IBNetwork:
        network = IBNetwork(data.input_dim, data.classes, model, estimator).to(device=device, dtype=dtype)
        if estimator is not None:
            x = data.train.x[:2].to(device=device, dtype=dtype)
            materialise(estimator, network, lambda: (x, network.encode(x)[0]))
        return network

    def parameter_groups(self, module: IBNetwork) -> dict[str, list[nn.Parameter]]:
        groups = {"model": [*module.encoder.parameters(), *module.decoder.parameters()]}
        critic = [p for p in module.estimator.parameters() if p.requires_grad] if module.estimator is not None else []
        if critic:
            groups["critic"] = critic
        return groups

    def _sample(self, module: IBNetwork, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(z, mean, log_var)``, each ``[B, K]``: z = μ for the baseline, a draw of q(z|x) otherwise."""
        mean, log_var = module.encode(x)
        z = mean if self.method == "baseline" else mean + (0.5 * log_var).exp() * randn_like_global(mean)
        return z, mean, log_var

    def step(self, module: IBNetwork, x: Tensor, y: Tensor) -> StepOutput:
        z, mean, log_var = self._sample(module, x)
        logits = module.decoder(z)
        ce = F.cross_entropy(logits, y)
        metrics = {"ce": ce.detach(), "error": (logits.argmax(-1) != y).float().mean()}
        losses: dict[str, Tensor] = {}
        if self.method == "baseline":
            loss = ce
        elif self.method == "vib":
            kl = 0.5 * (mean.pow(2) + log_var.exp() - log_var - 1).sum(-1).mean()
            loss = ce + self.beta * kl
            metrics["kl"] = kl.detach()
        else:
            estimator = module.estimator
            if estimator is None:
                raise ValueError("the IB task's method 'mi' needs an [estimator] block")
            encoder = {"log_var": log_var} if estimator.accepts_log_var else {}
            if estimator.accepts_mean:
                encoder["mean"] = mean
            surrogate = estimator(x, z, **encoder)
            loss = ce + self.beta * surrogate
            losses["critic"] = estimator.training_loss(x, z, value=surrogate)
            metrics["mi_surrogate"] = surrogate.detach()
        losses["model"] = loss
        metrics["loss"] = loss.detach()
        return StepOutput(losses, metrics)

    @torch.no_grad()
    def evaluate(
        self, module: IBNetwork, data: Splits, splits: Sequence[str], options: IBEvalOptions
    ) -> dict[str, float]:
        samples = 1 if self.method == "baseline" else options.samples
        metrics: dict[str, float] = {}
        for split in splits:
            wrong = 0.0
            nll = 0.0
            part = data.split(split)
            for x, y in part.batches(options.batch_size):
                mean, log_var = module.encode(x)
                std = (0.5 * log_var).exp()
                probs = torch.zeros(x.shape[0], data.classes, dtype=x.dtype, device=x.device)
                for _ in range(samples):
                    z = mean if self.method == "baseline" else mean + std * torch.randn_like(mean)
                    probs += F.softmax(module.decoder(z), dim=-1) / samples
                wrong += float((probs.argmax(-1) != y).sum())
                nll += float(-probs.gather(1, y[:, None]).clamp_min(1e-12).log().sum())
            metrics.update({f"{split}_error": wrong / len(part), f"{split}_nll": nll / len(part)})
        return metrics

    def information_every(self, options: IBEvalOptions) -> int:
        return options.mi_every

    @torch.no_grad()
    def information(self, module: IBNetwork, data: Splits, options: IBEvalOptions) -> dict[str, float]:
        """``mi_zy`` = H(y) − CE ≤ I(z; y) on the first ``mi_rows`` validation rows, with H(y) the
        entropy of their labels and CE the decoder's cross-entropy on one draw of z (nats), and
        ``mi_xz`` = the estimator's I(x; z) when it gives a value. Under torch.distributed each rank
        takes its slice of those rows (the trainer averages the values over ranks)."""
        rows, mine = eval_rows(options.mi_rows)
        x, y = data.val.x[mine], data.val.y[mine]
        z, _, _ = self._sample(module, x)
        labels = data.val.y[:rows]
        frequencies = torch.bincount(labels, minlength=data.classes).to(x.dtype) / len(labels)
        entropy = -(frequencies * frequencies.clamp_min(1e-30).log()).sum()
        values = {"mi_zy": float(entropy - F.cross_entropy(module.decoder(z), y))}
        if module.estimator is not None:
            value = module.estimator.estimate(x, z)
            if value is not None:
                values["mi_xz"] = float(value)
        return values
