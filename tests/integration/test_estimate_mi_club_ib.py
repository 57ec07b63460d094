"""The IB task with CLUB: the encoder descends the bound while q(z|x) fits z by likelihood.

Needs ``MIGradientEstimator.training_loss`` and the IB task's critic loss built from it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

from mireg.config import Resolved
from mireg.distributed import randn_like_global
from mireg.training import Trainer

if TYPE_CHECKING:  # annotations only: at run time the module `conftest` may be tests/core's
    from conftest import AppliedIBStep

pytest.importorskip("mireg_club")


CLUB = {"name": "club", "options": {"hidden": 8}}


def test_ib_trains_end_to_end_with_club(tmp_path: Path, ib_run: Callable[..., Resolved]) -> None:
    results = Trainer(ib_run("mi", CLUB, epochs=2), tmp_path, progress=False).run()
    metrics = results["metrics"]
    assert results["estimator"] == "club"
    assert 0.0 <= metrics["test_error"] <= 1.0
    assert torch.isfinite(torch.tensor([metrics["train_loss"], metrics["train_mi_surrogate"]])).all()


def test_q_descends_its_likelihood_loss_and_the_encoder_the_bound(
    applied_ib_step: Callable[..., AppliedIBStep],
) -> None:
    step = applied_ib_step(CLUB)

    torch.manual_seed(0)  # the same z noise as the step above
    mean, log_var = step.net.encode(step.x)
    z = mean + (0.5 * log_var).exp() * randn_like_global(mean)
    nll = step.estimator.training_loss(step.x, z)
    for got, want in zip(step.applied["critic"], torch.autograd.grad(nll, step.groups["critic"]), strict=True):
        torch.testing.assert_close(got, want)  # q fits by maximum likelihood, not by the bound
    torch.manual_seed(0)
    out = step.task.step(step.net, step.x, step.y)
    for got, want in zip(
        step.applied["model"], torch.autograd.grad(out.losses["model"], step.groups["model"]), strict=True
    ):
        torch.testing.assert_close(got, want)  # the encoder descends ce + β·CLUB
