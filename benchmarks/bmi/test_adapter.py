"""The adapter inside benchmark-mi's own pipeline; runs in the benchmark-mi environment only.

benchmarks/.bmi-venv/bin/python -m pytest benchmarks/bmi/test_adapter.py -q
"""

from __future__ import annotations

import math

import bmi
import pytest
from adapter import MiregEstimator

import mireg

needs_estimate_mi = pytest.mark.skipif(not hasattr(mireg, "estimate_mi"), reason="this mireg has no estimate_mi")


def test_parameters_report_the_estimator_and_its_settings() -> None:
    params = MiregEstimator("mine-f", max_steps=500, seed=3).parameters()
    assert params.dict() == {"estimator": "mine-f", "settings": {"max_steps": 500, "seed": 3}}


@needs_estimate_mi
def test_benchmark_mi_pipeline_runs_a_mireg_estimator(tmp_path) -> None:
    """benchmark-mi's ``run_estimator`` on its bivariate normal task (ρ = 0.75, I = −½ log(1 − ρ²)
    = 0.4133 nats), 5,000 rows written by benchmark-mi itself: mireg's InfoNCE at its defaults
    lands within 0.15 nats, a band wider than the held-out standard error at 5,000 rows."""
    task = bmi.benchmark.BENCHMARK_TASKS["1v1-normal-0.75"]
    assert task.mutual_information == pytest.approx(-0.5 * math.log(1 - 0.75**2), abs=1e-9)
    path = tmp_path / "sample.csv"
    task.save_sample(path, n_samples=5_000, seed=0)
    result = bmi.benchmark.run_estimator(
        MiregEstimator("infonce", seed=0), estimator_id="mireg-infonce", sample_path=path, task_id=task.id, seed=0
    )
    assert result.success, result.additional_information
    assert result.mi_estimate == pytest.approx(task.mutual_information, abs=0.15)
    assert result.time_in_seconds > 0
    assert result.additional_information["steps"] > 0
