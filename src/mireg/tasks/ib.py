"""The Information Bottleneck task (paper §4.3, eq. 7): minimise H(y|z) + β·I(x; z).

A Gaussian encoder q(z|x) = N(μ(x), diag σ²(x)) (an MLP giving μ and log σ², VIB's
784-1024-1024-K for MNIST) feeds a softmax decoder p(y|z) (one linear layer). The
information term depends on ``method``:

* ``baseline``: deterministic encoder z = μ(x), cross-entropy only;
* ``vib``: KL(q(z|x) ‖ N(0, I)), the variational upper bound of Alemi et al. (2017);
* ``mi``: the ``[estimator]`` block's ``mi(x, z)`` (MINE, MIGE, any registered estimator).
  Estimators whose ``forward`` takes ``log_var`` (MIGE) receive the encoder's log-variances
  and use Circumstance III, ∇I = ∇H(z) − ∇H(z|x) with the analytic Gaussian conditional.
  The encoder descends β·mi(x, z); the estimator's own parameters (a critic) form the
  ``critic`` group, which ascends mi(x, z).

Test error follows VIB: the softmax averaged over ``eval.samples`` draws of z.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mireg.data import Splits
from mireg.distributed import randn_like_global
from mireg.estimators import MIGradientEstimator
from mireg.tasks.base import StepOutput, Task

Method = Literal["baseline", "vib", "mi"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class IBModel:
    """The ``[model]`` block of the IB task.

    Options:
      hidden: widths of the encoder's hidden layers (VIB on MNIST: [1024, 1024])
      z_dim: width K of the representation z
      sigma_offset: σ = softplus(raw − sigma_offset), VIB's parameterisation (small initial σ)
    """

    name: ClassVar[str] = "model"
    hidden: list[int] | tuple[int, ...] = (256, 256)
    z_dim: int = 32
    sigma_offset: float = 5.0

    def __post_init__(self) -> None:
        if self.z_dim < 1 or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden widths and z_dim must be positive integers, got {self.hidden} and {self.z_dim}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class IBEval:
    """The ``[eval]`` block of the IB task.

    Options:
      samples: draws of z whose softmax outputs are averaged per input (VIB uses 12)
      batch_size: rows per evaluation batch
    """

    name: ClassVar[str] = "eval"
    samples: int = 12
    batch_size: int = 1000

    def __post_init__(self) -> None:
        if self.samples < 1 or self.batch_size < 1:
            raise ValueError(f"samples and batch_size must be positive, got {self.samples} and {self.batch_size}")


class IBNetwork(nn.Module):
    """Gaussian encoder ``[B, d] -> (μ, log σ²)`` (each ``[B, K]``), linear decoder ``[B, K] -> [B, C]``,
    and the MI estimator (or ``None``) as a submodule."""

    def __init__(self, input_dim: int, classes: int, options: IBModel, estimator: MIGradientEstimator | None) -> None:
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


def _takes_log_var(estimator: MIGradientEstimator) -> bool:
    return estimator.accepts_log_var


class IB(Task):
    """Information Bottleneck classifier: cross-entropy plus β times an information term on I(x; z).

    Options:
      method: "baseline" (deterministic, cross-entropy only), "vib" (KL to N(0, I)) or "mi" (the [estimator])
      beta: weight β of the information term (ignored by "baseline")
    """

    name = "ib"
    Model = IBModel
    Eval = IBEval
    headline = "test_error"

    def __init__(self, *, method: Method = "mi", beta: float = 1e-3) -> None:
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.method: Method = method
        self.beta = beta

    def uses_estimator(self) -> bool:
        return self.method == "mi"

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "beta": self.beta if self.method != "baseline" else None}

    def build(
        self,
        data: Splits,
        model: Any,
        estimator: MIGradientEstimator | None,
        *,
        device: torch.device,
        dtype: torch.dtype,
    ) -> IBNetwork:
        network = IBNetwork(data.input_dim, data.classes, model, estimator).to(device=device, dtype=dtype)
        lazy = estimator is not None and any(
            isinstance(p, nn.parameter.UninitializedParameter) for p in estimator.parameters()
        )
        if lazy:
            assert estimator is not None
            with torch.no_grad():  # materialise a lazy critic before optimizers see its parameters
                x = data.train.x[:2].to(device=device, dtype=dtype)
                estimator(x, network.encode(x)[0])
        return network

    def parameter_groups(self, module: nn.Module) -> dict[str, list[nn.Parameter]]:
        assert isinstance(module, IBNetwork)
        groups = {"model": [*module.encoder.parameters(), *module.decoder.parameters()]}
        critic = [p for p in module.estimator.parameters() if p.requires_grad] if module.estimator is not None else []
        if critic:
            groups["critic"] = critic
        return groups

    def step(self, module: nn.Module, x: Tensor, y: Tensor) -> StepOutput:
        assert isinstance(module, IBNetwork)
        mean, log_var = module.encode(x)
        z = mean if self.method == "baseline" else mean + (0.5 * log_var).exp() * randn_like_global(mean)
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
            assert estimator is not None, "method 'mi' needs an estimator"
            info = estimator(x, z, log_var=log_var) if _takes_log_var(estimator) else estimator(x, z)
            loss = ce + self.beta * info
            losses["critic"] = estimator.training_loss(x, z, value=info)
            metrics["mi_term"] = info.detach()
        losses["model"] = loss
        metrics["loss"] = loss.detach()
        return StepOutput(losses, metrics)

    @torch.no_grad()
    def evaluate(self, module: nn.Module, data: Splits, split: str, options: Any) -> dict[str, float]:
        assert isinstance(module, IBNetwork)
        samples = 1 if self.method == "baseline" else options.samples
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
        return {f"{split}_error": wrong / len(part), f"{split}_nll": nll / len(part)}
