"""The information plane: I(z; y) = H(y) − CE in closed form, I(x; z) where the estimator gives a value,
logged every ``eval.mi_every`` epochs and drawn as a third panel of ``curves.png``."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from test_dim import tiny_splits

from mireg.config import Resolved, parse_config, resolve
from mireg.registry import default_registry
from mireg.tasks.dim import DIM, DIMEvalOptions, DIMModelOptions
from mireg.tasks.ib import IB, IBEvalOptions, IBModelOptions, IBNetwork
from mireg.training import Trainer
from mireg.training.reports import plot_curves


def synthetic(rows: int = 40) -> Any:
    raw = {
        "task": {"name": "ib", "options": {"method": "vib"}},
        "data": {"name": "synthetic", "options": {"val_size": rows}},
    }
    return resolve(parse_config(raw)).dataset.load()


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])  # the IHDR chunk
    return width, height


def test_mi_zy_is_label_entropy_minus_cross_entropy() -> None:
    """With a zero decoder every class gets probability 1/C, so CE = log C and I(z; y) = H(y) − log C."""
    data = synthetic()
    net = IBNetwork(data.input_dim, data.classes, IBModelOptions(hidden=(8,), z_dim=2), None)
    with torch.no_grad():
        net.decoder.weight.zero_()
        net.decoder.bias.zero_()
    values = IB(method="vib").information(net, data, IBEvalOptions(mi_rows=30))
    counts = torch.bincount(data.val.y[:30], minlength=data.classes).double()
    p = counts[counts > 0] / 30
    expected = float(-(p * p.log()).sum()) - math.log(data.classes)
    assert set(values) == {"mi_zy"}  # no estimator: no I(x; z)
    assert values["mi_zy"] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(("estimator", "has_xz"), [("mine", True), ("mige", True)])
def test_the_run_logs_the_plane_every_mi_every_epochs(
    tmp_path: Path, estimator: str, has_xz: bool, ib_run: Callable[..., Resolved]
) -> None:
    """Both give a value of I(x; z): MINE its bound, MIGE the heat-flow value (on x projected to 4
    columns: 40 rows hold 3 (4 + 3) + 2 = 23, the least the heat-flow value needs)."""
    options = {"mine": {"hidden": 16, "layers": 1}, "mige": {"score": "ssge", "projection_dim": 4}}[estimator]
    run = ib_run("mi", {"name": estimator, "options": options}, epochs=4)
    run = resolve(parse_config({**run.config.to_dict(), "eval": {"samples": 2, "mi_every": 2, "mi_rows": 40}}))
    Trainer(run, tmp_path, progress=False).run()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [("mi_zy" in row, "mi_xz" in row) for row in rows] == [(False, False), (True, has_xz)] * 2
    assert all(math.isfinite(row[key]) for row in rows for key in ("mi_zy", "mi_xz") if key in row)
    assert all(row["mi_zy"] <= math.log(3) + 1e-6 for row in rows if "mi_zy" in row)  # H(y) ≤ log C, C = 3
    assert all("train_mi_surrogate" in row and "train_mi_term" not in row for row in rows)
    assert png_size(tmp_path / "curves.png")[0] == (1350 if has_xz else 900)  # the third panel: 13.5 in at 100 dpi


def test_plot_without_the_plane_keeps_two_panels(tmp_path: Path) -> None:
    history = [{"epoch": 1, "train_loss": 1.0, "val_error": 0.5, "mi_zy": 0.1}]
    plot_curves(tmp_path / "a.png", history)
    plot_curves(tmp_path / "b.png", [{**history[0], "mi_xz": 2.0}])
    assert png_size(tmp_path / "a.png") == (900, 350) and png_size(tmp_path / "b.png") == (1350, 350)


def test_dim_logs_the_estimators_value_of_i_a_y(tmp_path: Path) -> None:
    pytest.importorskip("mireg_infonce")
    estimator = default_registry().create("mi_gradient", "infonce", {"hidden": 8})
    task = DIM(pair="conv")
    data = tiny_splits((3, 32, 32))
    model = DIMModelOptions(variant="dcgan", channels=[4, 8, 8], fc_dim=16, y_dim=4)
    net = task.build(data, model, estimator, device=torch.device("cpu"), dtype=torch.float32)
    net.eval()
    options = DIMEvalOptions(mi_every=1, mi_rows=16)
    values = task.information(net, data, options)
    with torch.no_grad():
        features = net.encoder(data.val.x[:16])
        expected = float(estimator.estimate(features.conv, features.y))
    assert set(values) == {"mi_y"} and values["mi_y"] == pytest.approx(expected, rel=1e-6)
    assert task.information_every(options) == 1


def test_resolved_runs_need_no_second_lookup(ib_run: Callable[..., Resolved]) -> None:
    run: Resolved = ib_run("mi", {"name": "mige", "options": {"score": "ssge"}})
    assert run.estimator is not None and run.estimator.cls.name == "mige"
    first, second = run.estimator.build(), run.estimator.build()
    assert first is not second and type(first).name == "mige"
