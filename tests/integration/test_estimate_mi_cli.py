"""``mireg estimate`` end to end with a real bound plugin: text and JSON output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mireg.cli import main

pytest.importorskip("mireg_mine")


def test_estimate_prints_value_stderr_steps_and_seconds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 2))
    y = 0.8 * x + 0.6 * rng.standard_normal((1000, 2))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    short = ["--estimator", "mine", "-o", "hidden=16", "--batch-size", "64", "--max-steps", "40", "--seed", "2"]
    assert main(["estimate", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), *short]) == 0
    text = capsys.readouterr().out
    assert text.startswith("I(x; y) = ") and " ± " in text and "nats  (mine)" in text
    assert "40 steps" in text and "600 train, 200 validation, 200 test in 3 batches" in text
    assert main(["estimate", str(tmp_path / "data.npz"), *short, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["estimator"] == "mine" and record["options"]["hidden"] == 16 and record["steps"] == 40
    assert math.isfinite(record["value"]) and record["stderr"] > 0 and record["seconds"] > 0
    assert f"{record['value']:.4f}" in text  # same seed, same rows: the same value both ways
