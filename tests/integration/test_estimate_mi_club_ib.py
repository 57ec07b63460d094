"""The IB task with CLUB: the encoder descends the bound while q(z|x) fits z by likelihood.

Needs ``MIGradientEstimator.training_loss`` and the IB task's critic loss built from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from mireg.config import Resolved, parse_config, resolve
from mireg.distributed import randn_like_global
from mireg.registry import default_registry
from mireg.tasks.ib import IB
from mireg.training import Trainer

pytest.importorskip("mireg_club")


def resolved(epochs: int) -> Resolved:
    raw: dict[str, Any] = {
        "task": {"name": "ib", "options": {"method": "mi", "beta": 0.01}},
        "data": {"name": "synthetic", "options": {"train_size": 120, "val_size": 40, "test_size": 40}},
        "model": {"hidden": [16], "z_dim": 3},
        "estimator": {"name": "club", "options": {"hidden": 8}},
        "train": {"epochs": epochs, "batch_size": 40, "seed": 3},
        "eval": {"samples": 2},
    }
    return resolve(parse_config(raw))


def test_ib_trains_end_to_end_with_club(tmp_path: Path) -> None:
    results = Trainer(resolved(epochs=2), tmp_path, progress=False).run()
    metrics = results["metrics"]
    assert results["estimator"] == "club"
    assert 0.0 <= metrics["test_error"] <= 1.0
    assert torch.isfinite(torch.tensor([metrics["train_loss"], metrics["train_mi_surrogate"]])).all()


def test_q_descends_its_likelihood_loss_and_the_encoder_the_bound() -> None:
    run = resolved(epochs=1)
    data = run.dataset.load()
    estimator = default_registry().create("mi_gradient", "club", {"hidden": 8})
    task: IB = run.task
    net = task.build(data, run.model, estimator, device=torch.device("cpu"), dtype=torch.float32)
    groups = task.parameter_groups(net)
    optimizers = {name: torch.optim.SGD(params, lr=0.0) for name, params in groups.items()}
    x, y = data.train.x[:40], data.train.y[:40]
    torch.manual_seed(0)
    Trainer._apply(task.step(net, x, y).losses, groups, optimizers)
    applied = {name: [p.grad.clone() for p in params] for name, params in groups.items()}

    torch.manual_seed(0)  # the same z noise as the step above
    mean, log_var = net.encode(x)
    z = mean + (0.5 * log_var).exp() * randn_like_global(mean)
    nll = estimator.training_loss(x, z)
    for got, want in zip(applied["critic"], torch.autograd.grad(nll, groups["critic"]), strict=True):
        torch.testing.assert_close(got, want)  # q fits by maximum likelihood, not by the bound
    torch.manual_seed(0)
    out = task.step(net, x, y)
    for got, want in zip(applied["model"], torch.autograd.grad(out.losses["model"], groups["model"]), strict=True):
        torch.testing.assert_close(got, want)  # the encoder descends ce + β·CLUB
