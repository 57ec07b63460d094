"""The contract of a training task (IB here, DIM next): what the generic trainer calls.

A task is registered through the ``register_tasks`` hook and selected by ``[task] name``. Its
options are keyword-only ``__init__`` parameters (validated like estimator options); the
options of ``[model]`` and ``[eval]`` are the keyword-only fields of its ``Model`` and ``Eval``
classes. The trainer then:

1. ``module = task.build(data, model, estimator, device=..., dtype=...)``: every trainable and
   stateful part (the estimator included, as a submodule) in one module, on the device, so
   ``module.state_dict()`` is the whole state to checkpoint;
2. one optimizer per entry of ``task.parameter_groups(module)``;
3. per batch, ``out = task.step(module, x, y)``: ``out.losses[group]`` is the scalar that the
   optimizer of ``group`` minimises w.r.t. that group's parameters only (a MINE critic can thus
   ascend the bound that the encoder descends);
4. after each epoch ``task.evaluate(module, data, "val", eval)``, at the end also on ``"test"``.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mireg.data import Splits
from mireg.estimators import MIGradientEstimator
from mireg.text import summary_line


@dataclasses.dataclass(frozen=True, kw_only=True)
class NoOptions:
    """Options of a block that takes none."""


@dataclasses.dataclass(frozen=True)
class StepOutput:
    """What one training step returns.

    Attributes:
        losses: parameter-group name -> 0-dim loss its optimizer minimises (keys of
            :meth:`Task.parameter_groups`; a group without a loss is not stepped).
        metrics: name -> detached 0-dim tensor, averaged over the epoch by the trainer.
    """

    losses: dict[str, Tensor]
    metrics: dict[str, Tensor]


class Task(abc.ABC):
    """A training task: builds the model, computes the step's losses and evaluates."""

    #: The name ``[task] name`` selects.
    name: ClassVar[str]
    #: Options of the ``[model]`` block (a keyword-only dataclass).
    Model: ClassVar[type] = NoOptions
    #: Options of the ``[eval]`` block (a keyword-only dataclass).
    Eval: ClassVar[type] = NoOptions
    #: Metric (from :meth:`evaluate`) that ``mireg run`` prints in its final table, first.
    headline: ClassVar[str] = "test_error"

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring."""
        return summary_line(cls)

    def uses_estimator(self) -> bool:
        """Whether this task, with its options, needs an ``[estimator]`` block."""
        return False

    def describe(self) -> dict[str, Any]:
        """Short facts for the final table (e.g. method and β)."""
        return {}

    @abc.abstractmethod
    def build(
        self,
        data: Splits,
        model: Any,
        estimator: MIGradientEstimator | None,
        *,
        device: torch.device,
        dtype: torch.dtype,
    ) -> nn.Module:
        """The module holding every trainable or stateful part, on ``device`` in ``dtype``."""

    def parameter_groups(self, module: nn.Module) -> dict[str, list[nn.Parameter]]:
        """Parameters by optimizer group; ``"model"`` uses ``train.lr``, any other ``train.critic_lr``."""
        return {"model": [p for p in module.parameters() if p.requires_grad]}

    @abc.abstractmethod
    def step(self, module: nn.Module, x: Tensor, y: Tensor) -> StepOutput:
        """Losses and metrics of one batch ``x`` ``[B, d]``, ``y`` ``[B]`` (module in training mode)."""

    @abc.abstractmethod
    def evaluate(self, module: nn.Module, data: Splits, split: str, options: Any) -> dict[str, float]:
        """Metrics on ``data.split(split)`` (``"val"`` or ``"test"``), keys prefixed by the split name."""
