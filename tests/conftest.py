"""Fixtures shared by the IB tests: a small IB run on synthetic data and one IB step whose gradients
went through the trainer's update."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest
import torch
from torch import Tensor, nn

from mireg.config import Resolved, parse_config, resolve
from mireg.estimators import MIGradientEstimator
from mireg.registry import default_registry
from mireg.tasks.ib import IB, IBNetwork
from mireg.training import Trainer


def _ib_run(method: str, estimator: dict[str, Any] | None = None, epochs: int = 1) -> Resolved:
    raw: dict[str, Any] = {
        "task": {"name": "ib", "options": {"method": method, "beta": 0.01}},
        "data": {"name": "synthetic", "options": {"train_size": 120, "val_size": 40, "test_size": 40}},
        "model": {"hidden": [16], "z_dim": 3},
        "train": {"epochs": epochs, "batch_size": 40, "seed": 3},
        "eval": {"samples": 2},
    }
    if estimator is not None:
        raw["estimator"] = estimator
    return resolve(parse_config(raw))


@pytest.fixture
def ib_run() -> Callable[..., Resolved]:
    """``ib_run(method, estimator=None, epochs=1)``: the IB task with ``method`` (and the ``[estimator]``
    block ``{"name": ..., "options": ...}``) on 120 synthetic training rows, batches of 40, seed 3."""
    return _ib_run


@attrs.frozen
class AppliedIBStep:
    """One IB step on ``x`` ``[40, d]``, ``y`` ``[40]`` (the first training rows) with ``torch.manual_seed(0)``
    before it; ``applied`` holds the gradients ``Trainer._apply`` left on each group's parameters (lr 0)."""

    task: IB
    net: IBNetwork
    estimator: MIGradientEstimator
    groups: dict[str, list[nn.Parameter]]
    x: Tensor
    y: Tensor
    applied: dict[str, list[Tensor]]


@pytest.fixture
def applied_ib_step(ib_run: Callable[..., Resolved]) -> Callable[..., AppliedIBStep]:
    """``applied_ib_step(estimator, eval_estimator=False)``: an :class:`AppliedIBStep` of the ``"mi"``
    method with the estimator block ``estimator``, the estimator in eval mode when asked (so a
    moving average does not change between the applied step and a recomputation)."""

    def apply(estimator: dict[str, Any], *, eval_estimator: bool = False) -> AppliedIBStep:
        run = ib_run("mi", estimator)
        data = run.dataset.load()
        mi = default_registry().create("mi_gradient", estimator["name"], estimator["options"])
        task: IB = run.task
        net = task.build(data, run.model, mi, device=torch.device("cpu"), dtype=torch.float32)
        if eval_estimator:
            mi.eval()
        groups = task.parameter_groups(net)
        optimizers = {name: torch.optim.SGD(params, lr=0.0) for name, params in groups.items()}
        x, y = data.train.x[:40], data.train.y[:40]
        torch.manual_seed(0)
        Trainer._apply(task.step(net, x, y).losses, groups, optimizers)
        applied = {name: [p.grad.clone() for p in params] for name, params in groups.items()}
        return AppliedIBStep(task, net, mi, groups, x, y, applied)

    return apply
