"""The IB task: every method trains, the critic ascends what the encoder descends, VIB's KL is right,
MIGE gets the encoder's means and log-variances and keeps σ bounded at large β."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from mireg.config import Resolved, parse_config, resolve
from mireg.data import dataset
from mireg.estimators import MIGradientEstimator
from mireg.registry import default_registry
from mireg.tasks.ib import IB, IBEvalOptions, IBModelOptions, IBNetwork
from mireg.training import Trainer
from mireg.training.checkpoint import load_checkpoint

if TYPE_CHECKING:  # annotations only: at run time the module `conftest` may be tests/core's
    from conftest import AppliedIBStep


METHODS = {
    "baseline": ("baseline", None),
    "vib": ("vib", None),
    "mige": ("mi", {"name": "mige", "options": {"score": "ssge"}}),
    "mine": ("mi", {"name": "mine", "options": {"hidden": 16, "layers": 1}}),
}


@pytest.mark.parametrize("label", list(METHODS))
def test_every_method_trains_and_reports_errors(label: str, tmp_path: Path, ib_run: Callable[..., Resolved]) -> None:
    method, estimator = METHODS[label]
    if estimator is not None:
        pytest.importorskip("mireg_ssge" if estimator["name"] == "mige" else "mireg_mine")
    results = Trainer(ib_run(method, estimator, epochs=2), tmp_path, progress=False).run()
    metrics = results["metrics"]
    assert 0.0 <= metrics["test_error"] <= 1.0 and 0.0 <= metrics["val_error"] <= 1.0
    assert torch.isfinite(torch.tensor(metrics["train_loss"]))
    assert results["method"] == method and results["estimator"] == (estimator["name"] if estimator else None)


def test_critic_ascends_the_bound_the_encoder_descends(applied_ib_step: Callable[..., AppliedIBStep]) -> None:
    pytest.importorskip("mireg_mine")
    # eval mode: no moving-average update, so both passes compute the same function
    step = applied_ib_step({"name": "mine", "options": {"hidden": 16, "layers": 1}}, eval_estimator=True)

    torch.manual_seed(0)
    out = step.task.step(step.net, step.x, step.y)
    info = -out.losses["critic"]
    expected_critic = torch.autograd.grad(info, step.groups["critic"], retain_graph=True)
    expected_model = torch.autograd.grad(out.losses["model"], step.groups["model"])
    for got, want in zip(step.applied["critic"], expected_critic, strict=True):
        torch.testing.assert_close(got, -want)  # the critic ascends the bound
    for got, want in zip(step.applied["model"], expected_model, strict=True):
        torch.testing.assert_close(got, want)  # the encoder descends ce + β·bound


def test_mige_gets_the_log_variances_and_bounds_do_not() -> None:
    pytest.importorskip("mireg_mine")
    assert default_registry().create("mi_gradient", "mige", {"score": "ssge"}).accepts_log_var
    assert not default_registry().create("mi_gradient", "mine", {}).accepts_log_var


def test_vib_kl_matches_torch_distributions() -> None:
    torch.manual_seed(0)
    net = IBNetwork(5, 3, IBModelOptions(hidden=(8,), z_dim=4), None)
    x, y = torch.randn(10, 5), torch.randint(3, (10,))
    mean, log_var = net.encode(x)
    expected = kl_divergence(Normal(mean, (0.5 * log_var).exp()), Normal(0.0, 1.0)).sum(-1).mean()
    metrics = IB(method="vib", beta=0.5).step(net, x, y).metrics
    torch.testing.assert_close(metrics["kl"], expected.detach())


def test_evaluation_averages_softmax_over_samples() -> None:
    data = dataset("synthetic", {"train_size": 20, "val_size": 30, "test_size": 10}).load()
    torch.manual_seed(0)
    net = IBNetwork(data.input_dim, data.classes, IBModelOptions(hidden=(8,), z_dim=2, sigma_offset=-2.0), None)
    baseline = IB(method="baseline")
    first = baseline.evaluate(net, data, ("val",), IBEvalOptions(samples=5))
    assert first == baseline.evaluate(net, data, ("val",), IBEvalOptions(samples=5))  # deterministic z = μ
    stochastic = IB(method="vib").evaluate(net, data, ("val",), IBEvalOptions(samples=50))
    assert set(stochastic) == {"val_error", "val_nll"} and stochastic != first


class _Recording(MIGradientEstimator):
    """Records the keywords it was called with; ``forward`` is 0 with the graph of z."""

    name = "recording"
    accepts_log_var = True

    def __init__(self) -> None:
        super().__init__()
        self.keywords: list[str] = []

    def forward(self, x: torch.Tensor, z: torch.Tensor, *, log_var: torch.Tensor) -> torch.Tensor:
        self.keywords = ["log_var"]
        return 0 * (z.sum() + log_var.sum())


class _RecordingWithMean(_Recording):
    name = "recording-with-mean"
    accepts_mean = True

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, z: torch.Tensor, *, log_var: torch.Tensor, mean: torch.Tensor
    ) -> torch.Tensor:
        self.keywords = ["log_var", "mean"]
        return 0 * (z.sum() + log_var.sum() + mean.sum())


@pytest.mark.parametrize("estimator", [_Recording, _RecordingWithMean])
def test_the_means_go_only_to_estimators_that_declare_them(estimator: type[_Recording]) -> None:
    torch.manual_seed(0)
    mi = estimator()
    net = IBNetwork(5, 3, IBModelOptions(hidden=(8,), z_dim=4), mi)
    IB(method="mi", beta=0.1).step(net, torch.randn(10, 5), torch.randint(3, (10,)))
    assert mi.keywords == (["log_var", "mean"] if estimator.accepts_mean else ["log_var"])


def test_mige_keeps_sigma_bounded_at_a_large_beta(tmp_path: Path) -> None:
    # With ∇H(z) from an SSGE estimate of a 64-dim z on batches of 50, σ outgrows the spread of μ here
    # and the classifier collapses to chance; from the batch's Gaussian mixture σ stays near its initial value.
    pytest.importorskip("mireg_ssge")
    raw: dict[str, Any] = {
        "task": {"name": "ib", "options": {"method": "mi", "beta": 0.1}},
        "data": {"name": "digits", "options": {}},
        "model": {"hidden": [128], "z_dim": 64},
        "estimator": {"name": "mige", "options": {"score": "ssge"}},
        "train": {"epochs": 5, "batch_size": 50, "seed": 0, "optimizer": "adam", "lr": 1e-3, "threads": 1},
        "eval": {"samples": 4},
    }
    run = resolve(parse_config(raw))
    results = Trainer(run, tmp_path, progress=False).run()
    data = run.dataset.load()
    network = IBNetwork(data.input_dim, data.classes, run.model, None)
    state = load_checkpoint(tmp_path / "checkpoint.pt")["module"]
    network.load_state_dict({k: v for k, v in state.items() if not k.startswith("estimator.")})
    with torch.no_grad():
        mean, log_var = network.encode(data.test.x)
    spread = float((0.5 * log_var).exp().mean() / mean.std(0).mean())
    assert spread < 0.1, f"mean σ / mean sd(μ) = {spread:.3g} on the test split: σ ran away"
    assert results["metrics"]["test_error"] < 0.2
