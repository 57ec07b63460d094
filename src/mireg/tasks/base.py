"""The contract of a training task (IB here, DIM next): what the generic trainer calls.

A task is registered through the ``register_tasks`` hook and selected by ``[task] name``. Its
options are keyword-only ``__init__`` parameters (validated like estimator options); the
options of ``[model]`` and ``[eval]`` are the fields of its :attr:`Task.model_options` and
:attr:`Task.eval_options` records (attrs classes). ``Task[N, M, E]`` is generic over its network
``N`` and those two records. The trainer then:

1. ``module = task.build(data, model, estimator, device=..., dtype=...)``: every trainable and
   stateful part (the estimator included, as a submodule) in one module, on the device, so
   ``module.state_dict()`` is the whole state to checkpoint;
2. one optimizer per entry of ``task.parameter_groups(module)``;
3. per batch, ``out = task.step(module, x, y)``: ``out.losses[group]`` is the scalar that the
   optimizer of ``group`` minimises w.r.t. that group's parameters only (a MINE critic can thus
   ascend the bound that the encoder descends);
4. after each validated epoch ``task.evaluate(module, data, ("val",), eval)``; after the last one
   ``("val", "test")`` in one call;
5. every ``eval.mi_every`` epochs (where the eval record has it) ``task.information(module, batch)``
   on a fixed evaluation batch: MI values for the information plane.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import attrs
import torch
from torch import Tensor, nn

from mireg.data import Splits
from mireg.distributed import world
from mireg.estimators import MIGradientEstimator
from mireg.text import summary_line


@attrs.frozen(kw_only=True)
class NoOptions:
    """Options of a block that takes none."""


NetworkT = TypeVar("NetworkT", bound=nn.Module)
ModelOptionsT = TypeVar("ModelOptionsT", bound=attrs.AttrsInstance)
EvalOptionsT = TypeVar("EvalOptionsT", bound=attrs.AttrsInstance)


@attrs.frozen
class StepOutput:
    """What one training step returns.

    Attributes:
        losses: parameter-group name -> 0-dim loss its optimizer minimises (keys of
            :meth:`Task.parameter_groups`; a group without a loss is not stepped).
        metrics: name -> detached 0-dim tensor, averaged over the epoch by the trainer.
    """

    losses: dict[str, Tensor]
    metrics: dict[str, Tensor]


class Task(abc.ABC, Generic[NetworkT, ModelOptionsT, EvalOptionsT]):
    """A training task: builds the model, computes the step's losses and evaluates."""

    #: The name ``[task] name`` selects.
    name: ClassVar[str]
    #: The record of the ``[model]`` block's options (an attrs class with keyword-only fields).
    model_options: ClassVar[type[attrs.AttrsInstance]] = NoOptions
    #: The record of the ``[eval]`` block's options (an attrs class with keyword-only fields).
    eval_options: ClassVar[type[attrs.AttrsInstance]] = NoOptions
    #: Metric (from :meth:`evaluate`) that ``mireg run`` prints in its final table, first.
    headline: ClassVar[str] = "test_error"
    #: Suffixes of the further metrics that the final table shows after the headline.
    reported: ClassVar[tuple[str, ...]] = ("_error", "_nll", "_loss")

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring."""
        return summary_line(cls)

    def uses_estimator(self) -> bool:
        """Whether this task, with its options, needs an ``[estimator]`` block."""
        return False

    def describe(self) -> dict[str, Any]:
        """Short facts for the final table (e.g. method and β); ``None`` values are not shown."""
        return {}

    @abc.abstractmethod
    def build(
        self,
        data: Splits,
        model: ModelOptionsT,
        estimator: MIGradientEstimator | None,
        *,
        device: torch.device,
        dtype: torch.dtype,
    ) -> NetworkT:
        """The module holding every trainable or stateful part, on ``device`` in ``dtype``."""

    def parameter_groups(self, module: NetworkT) -> dict[str, list[nn.Parameter]]:
        """Parameters by optimizer group; ``"model"`` uses ``train.lr``, any other ``train.critic_lr``."""
        return {"model": [p for p in module.parameters() if p.requires_grad]}

    @abc.abstractmethod
    def step(self, module: NetworkT, x: Tensor, y: Tensor) -> StepOutput:
        """Losses and metrics of one batch ``x`` ``[B, d]``, ``y`` ``[B]`` (module in training mode)."""

    @abc.abstractmethod
    def evaluate(
        self, module: NetworkT, data: Splits, splits: Sequence[str], options: EvalOptionsT
    ) -> dict[str, float]:
        """Metrics on each of ``splits`` (``"val"``, ``"test"``), keys prefixed by the split's name."""

    def information_every(self, options: EvalOptionsT) -> int:
        """Epochs between two :meth:`information` calls (0: never)."""
        return 0

    def information(self, module: NetworkT, data: Splits, options: EvalOptionsT) -> dict[str, float]:
        """MI values (nats) on a fixed evaluation batch, by name (the IB task's ``mi_xz``, ``mi_zy``),
        for the information plane; a value the estimator cannot give is left out."""
        return {}


def materialise(estimator: MIGradientEstimator, network: nn.Module, sides: Callable[[], Sequence[Tensor]]) -> None:
    """Give a lazy critic its parameters before any optimizer sees them: one call on the tensors
    that ``sides()`` computes (each ``[2, ·]``), with ``network`` in eval mode meanwhile so that
    BatchNorm statistics stay put. An estimator without lazy parameters is left alone."""
    if not any(isinstance(p, nn.parameter.UninitializedParameter) for p in estimator.parameters()):
        return
    mode = network.training
    network.eval()
    with torch.no_grad():
        estimator(*sides())
    network.train(mode)


def eval_rows(rows: int) -> tuple[int, slice]:
    """The fixed evaluation batch of the first ``rows`` rows (rounded down to a multiple of the
    world size, at least one per rank): ``(rows used in all, this rank's slice of them)``."""
    rank, size = world()
    each = max(1, rows // size)
    return each * size, slice(rank * each, (rank + 1) * each)
