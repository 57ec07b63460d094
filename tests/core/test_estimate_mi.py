"""``mireg.estimate_mi`` on the core alone: input checks, splits, no leakage, early stopping.

The estimators here are small test classes passed as instances (the bound plugins are tested
end to end in tests/integration/test_estimate_mi_gaussian.py).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import mireg
from mireg.critics import CriticEstimator
from mireg.estimate import estimate_mi, split_rows


class TinyNCE(CriticEstimator):
    """InfoNCE with a small separable critic (the core has no bound plugin)."""

    name = "tiny-nce"

    def __init__(self, *, hidden: int = 16) -> None:
        super().__init__(
            critic="separable",
            hidden=hidden,
            layers=1,
            embed_dim=8,
            activation="relu",
            x_dim=None,
            z_dim=None,
            negatives=None,
        )

    def bound(self, joint: Tensor, negative: Tensor) -> Tensor:
        logits = torch.cat([joint.unsqueeze(1), negative], dim=1)
        return torch.log_softmax(logits, dim=1)[:, 0].mean() + math.log(logits.shape[1])


class Correlation(mireg.MIGradientEstimator):
    """No parameters: the mean of x·z over the batch and columns (the correlation of standardised data)."""

    name = "correlation"

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        return (x * z).mean()

    def _estimate(self, x: Tensor, z: Tensor) -> Tensor:
        return (x * z).mean()


def gaussians(n: int, d: int, rho: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    return x, rho * x + math.sqrt(1 - rho * rho) * rng.standard_normal((n, d))


SHORT: dict[str, Any] = {"batch_size": 64, "max_steps": 60, "eval_every": 20, "patience": 1000}


def test_rows_must_match() -> None:
    x, y = gaussians(500, 2, 0.5)
    with pytest.raises(ValueError, match="same number of rows.*500 and 499"):
        estimate_mi(x, y[:-1], Correlation())


def test_too_few_rows_names_the_split_and_a_fix() -> None:
    x, y = gaussians(300, 2, 0.5)
    with pytest.raises(ValueError, match=r"300 rows are too few for batch_size=128.*at least 1280 rows.*at most 30"):
        estimate_mi(x, y, TinyNCE(), batch_size=128)
    with pytest.raises(ValueError, match=r"300 rows are too few for batch_size=200.*two.*at most 150"):
        estimate_mi(x, y, Correlation(), batch_size=200)  # no parameters: two batches of all rows suffice


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused(bad: float) -> None:
    x, y = gaussians(500, 2, 0.5)
    y[[3, 7], 1] = bad
    with pytest.raises(ValueError, match=r"y has NaN or infinite values in 2 row\(s\) \(first: \[3, 7\]\)"):
        estimate_mi(x, y, Correlation())


def test_constant_column_is_refused() -> None:
    x, y = gaussians(500, 3, 0.5)
    x[:, 1] = 4.0
    with pytest.raises(ValueError, match=r"column\(s\) \[1\] of x are constant.*drop"):
        estimate_mi(x, y, Correlation())


def test_three_dimensional_array_is_refused_with_the_reshape() -> None:
    x, y = gaussians(500, 4, 0.5)
    with pytest.raises(ValueError, match=r"x must be a matrix \[N, d\].*shape \(500, 2, 2\).*reshape"):
        estimate_mi(x.reshape(500, 2, 2), y, Correlation())


def test_non_numeric_input_is_refused() -> None:
    with pytest.raises(TypeError, match="x must hold numbers"):
        estimate_mi(np.array(["a"] * 500), np.zeros(500), Correlation())


def test_discrete_looking_column_warns_why() -> None:
    x, y = gaussians(640, 2, 0.5)
    x[:, 0] = np.round(x[:, 0]).clip(-2, 2)  # 5 distinct values
    with pytest.warns(UserWarning, match=r"column\(s\) \[0\] of x take at most 10 distinct values.*density ratio"):
        estimate_mi(x, y, Correlation(), batch_size=64)


def test_gradient_only_estimator_is_refused_clearly() -> None:
    class GradientOnly(Correlation):
        """Gives gradients only."""

        name = "gradient-only"

        def _estimate(self, x: Tensor, z: Tensor) -> None:
            return None

    x, y = gaussians(640, 2, 0.5)
    with pytest.raises(ValueError, match="'gradient-only' gives no MI value.*estimate\\(\\) returns None"):
        estimate_mi(x, y, GradientOnly(), batch_size=64)


def test_options_with_an_instance_are_refused() -> None:
    x, y = gaussians(640, 2, 0.5)
    with pytest.raises(ValueError, match="options.*name, not to an instance"):
        estimate_mi(x, y, Correlation(), options={"hidden": 3}, batch_size=64)


@pytest.mark.parametrize(("setting", "value"), [("batch_size", 1), ("lr", 0.0), ("patience", 0), ("max_steps", 2.5)])
def test_bad_settings_are_refused(setting: str, value: float) -> None:
    x, y = gaussians(640, 2, 0.5)
    with pytest.raises(ValueError, match=setting):
        estimate_mi(x, y, Correlation(), **{setting: value})


def test_parameterless_estimator_is_evaluated_on_batches_of_all_rows() -> None:
    # Correlation of standardised data: rho, up to the sampling error of 6,000 rows in 93 batches of 64
    # (nothing is fitted, so no row needs holding out).
    x, y = gaussians(6000, 1, 0.6, seed=3)
    result = estimate_mi(x[:, 0], y[:, 0], Correlation(), batch_size=64)  # 1-D arrays are one column each
    assert result.steps == 0 and result.history == () and result.rows == (0, 0, 6000)
    assert result.test_batches == 93
    assert 0.002 < result.stderr < 0.02
    assert abs(result.value - 0.6) < 4 * result.stderr


def test_splits_are_disjoint_and_cover_the_rows() -> None:
    train, validation, test = split_rows(1000, batch_size=64, test_fraction=0.2, validation_fraction=0.25, seed=4)
    assert (len(train), len(validation), len(test)) == (550, 250, 200)
    assert sorted(torch.cat([train, validation, test]).tolist()) == list(range(1000))


def _run(x: np.ndarray, y: np.ndarray) -> mireg.MIEstimate:
    torch.manual_seed(0)
    return estimate_mi(x, y, TinyNCE(), seed=7, **SHORT)


def test_held_out_rows_do_not_leak_into_training_or_standardisation() -> None:
    # Rescaling and shifting only the test rows (or only the validation rows) must leave every training
    # value bit for bit unchanged: the standardisation and the steps see training rows only.
    x, y = gaussians(1000, 2, 0.8, seed=1)
    _, validation, test = split_rows(1000, batch_size=64, seed=7)
    reference = _run(x, y)
    moved = {}
    for label, rows in (("test", test.numpy()), ("validation", validation.numpy())):
        x_moved, y_moved = x.copy(), y.copy()
        x_moved[rows] = 50 * x_moved[rows] + 20
        y_moved[rows] = -3 * y_moved[rows] - 9
        moved[label] = _run(x_moved, y_moved)
        assert [h.train for h in moved[label].history] == [h.train for h in reference.history]
    assert moved["test"].history == reference.history and moved["test"].best_step == reference.best_step
    assert moved["test"].value != reference.value


def test_standardisation_uses_the_training_rows() -> None:
    # The training rows reach the estimator standardised (mean 0, standard deviation 1 per column, up to
    # the 24 of 600 rows left out of the 9 batches), however far the held-out rows lie; a standardisation
    # fitted on all rows would shrink them to a standard deviation of ~0.03 here.
    x, y = gaussians(1000, 2, 0.5, seed=2)
    _, _, test = split_rows(1000, batch_size=64, seed=7)
    x[test.numpy()] = 100 * x[test.numpy()] + 100.0
    seen: list[Tensor] = []

    class Recorder(TinyNCE):
        def forward(self, x: Tensor, z: Tensor) -> Tensor:
            if self.training:
                seen.append(x.detach().clone())
            return super().forward(x, z)

    estimate_mi(x, y, Recorder(), seed=7, batch_size=64, max_steps=9, eval_every=9)  # 9 batches = 576 of 600 rows
    rows = torch.cat(seen)
    assert rows.shape == (576, 2)
    assert torch.unique(rows, dim=0).shape[0] == 576  # one pass, no row twice
    assert rows.mean(0).abs().max() < 0.1
    assert ((rows.std(0) - 1).abs() < 0.05).all()


def test_early_stopping_stops_after_patience() -> None:
    # Independent x and y: the critic can only overfit, so the validation loss stops improving early and
    # the run ends `patience` steps (to within one evaluation) after the best one, long before max_steps.
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((1000, 3)), rng.standard_normal((1000, 3))
    torch.manual_seed(0)
    result = estimate_mi(
        x, y, TinyNCE(hidden=64), batch_size=64, max_steps=5000, eval_every=10, patience=100, lr=3e-3, seed=1
    )
    assert result.steps < 5000
    assert 100 <= result.steps - result.best_step < 110
    assert len(result.history) == result.steps // 10
    assert abs(result.value) < 4 * result.stderr + 0.05  # no MI; the held-out value is near 0


def test_same_seed_same_result_and_global_rng_untouched() -> None:
    # An instance's eager layers are initialised by the caller; its lazy first layers inside estimate_mi.
    x, y = gaussians(1000, 2, 0.7, seed=6)
    instances = []
    for _ in range(3):
        torch.manual_seed(0)
        instances.append(TinyNCE())
    first_mi, second_mi, other_mi = instances
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = estimate_mi(x, y, first_mi, seed=3, **SHORT)
    assert torch.equal(torch.rand(1), before)  # the caller's generator state is restored
    second = estimate_mi(x, y, second_mi, seed=3, **SHORT)
    other = estimate_mi(x, y, other_mi, seed=4, **SHORT)
    assert first.history == second.history and first.value == second.value
    assert first.value != other.value


def test_result_record_is_json_ready() -> None:
    import json

    x, y = gaussians(1000, 2, 0.7, seed=6)
    result = estimate_mi(x, y, TinyNCE(), **SHORT)
    record = json.loads(json.dumps(result.to_dict()))
    assert record["estimator"] == "tiny-nce" and record["rows"] == [600, 200, 200]
    assert record["history"][0]["step"] == 20 and record["settings"]["batch_size"] == 64
    assert set(record) >= {"value", "stderr", "steps", "best_step", "history", "estimator", "options", "seconds"}


def test_estimator_without_parameters_keeps_module_untrained() -> None:
    x, y = gaussians(1000, 2, 0.7, seed=6)
    mi = Correlation()
    assert not list(mi.parameters()) and isinstance(mi, nn.Module)
    assert estimate_mi(x, y, mi, batch_size=64).best_step == 0


def test_cli_reads_npz_and_reports_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mireg.cli import main

    x, y = gaussians(640, 2, 0.5)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    np.savez(tmp_path / "wrong.npz", a=x, y=y)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y[:600])
    cases = [
        (["wrong.npz"], r"has no array\(s\) \['x'\]; it holds \['a', 'y'\]"),
        (["x.npy", "y.npy"], "same number of rows"),
        (["x.npy"], "must be an .npz archive"),
        (["data.npz", "-o", "hidden"], "KEY=VALUE"),
        (["data.npz", "--estimator", "nosuch"], "nosuch"),
    ]
    for argv, message in cases:
        code = main(["estimate", *(str(tmp_path / a) if a.endswith((".npz", ".npy")) else a for a in argv)])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("mireg estimate: error:"), (argv, err)
        assert re.search(message, err), (argv, err)


def test_cli_option_values_are_json_else_text() -> None:
    from mireg.estimate_cli import parse_options

    parsed = parse_options(["hidden=64", "lr=1e-3", "negatives=null", "critic=concat", "flag=true"])
    assert parsed == {"hidden": 64, "lr": 1e-3, "negatives": None, "critic": "concat", "flag": True}


def test_divergence_keeps_the_last_finite_parameters_and_warns() -> None:
    class Exploding(TinyNCE):
        """Its critic turns NaN at the 30th step (as an overflowing exp(T) would)."""

        calls = 0

        def forward(self, x: Tensor, z: Tensor) -> Tensor:
            Exploding.calls += self.training
            value = super().forward(x, z)
            return value * math.nan if Exploding.calls >= 30 else value

    x, y = gaussians(1000, 2, 0.7, seed=6)
    torch.manual_seed(0)
    with pytest.warns(RuntimeWarning, match=r"diverged by step 30.*kept the parameters of step 20: lower lr"):
        result = estimate_mi(x, y, Exploding(), batch_size=64, max_steps=100, eval_every=20)
    assert result.steps == 29 and result.best_step == 20 and math.isfinite(result.value)
