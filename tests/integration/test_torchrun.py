"""``torchrun --nproc_per_node=2 -m mireg run``: two gloo ranks on the CPU train one model.

Only rank 0 writes; a run resumed under torchrun ends where an uninterrupted one does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"


def config(tmp: Path, epochs: int, batch_size: int = 50) -> Path:
    text = (ROOT / "configs" / "ib-quick.toml").read_text()
    text = text.replace("epochs = 3", f"epochs = {epochs}").replace("batch_size = 50", f"batch_size = {batch_size}")
    assert f"epochs = {epochs}" in text and f"batch_size = {batch_size}" in text
    path = tmp / f"quick-{epochs}-{batch_size}.toml"
    path.write_text(text)
    return path


def torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "mireg", "run", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    tmp = tmp_path_factory.mktemp("ddp")
    result = torchrun(str(config(tmp, 3)), "--out", str(tmp / "run"))
    return tmp / "run", result


def test_two_ranks_train_and_only_rank_zero_writes(
    uninterrupted: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, result = uninterrupted
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "curves.png", "metrics.jsonl", "results.json"]
    assert result.stdout.count("| test_error |") == 1  # one results table, from rank 0
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == [1, 2, 3]
    results = json.loads((out / "results.json").read_text())
    assert 0.0 <= results["metrics"]["test_error"] < 0.75  # 4 balanced classes: chance is 0.75


def test_resume_under_torchrun_matches_the_uninterrupted_run(
    uninterrupted: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    torchrun(str(config(tmp_path, 1)), "--out", str(out))
    torchrun(str(config(tmp_path, 3)), "--out", str(out), "--resume")
    resumed = json.loads((out / "results.json").read_text())["metrics"]
    reference = json.loads((uninterrupted[0] / "results.json").read_text())["metrics"]
    assert resumed == pytest.approx(reference, rel=1e-9, abs=1e-12)


def test_distributed_without_a_launcher_says_how_to_launch(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    result = subprocess.run(
        [sys.executable, "-m", "mireg", "run", str(config(tmp_path, 1)), "--out", str(tmp_path / "x"), "--distributed"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 2
    assert "torchrun --nproc_per_node=N -m mireg run CONFIG" in result.stderr


def test_two_ranks_train_like_one_process_with_the_global_batch(
    uninterrupted: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    # Same rows per step (the global batch), the same noise (sliced from one global draw), the same
    # estimator inputs (gathered): only the order of floating-point reductions differs.
    out = tmp_path / "single"
    subprocess.run(
        [sys.executable, "-m", "mireg", "run", str(config(tmp_path, 3, batch_size=100)), "--out", str(out)],
        check=True,
        capture_output=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    single = json.loads((out / "results.json").read_text())["metrics"]
    distributed = json.loads((uninterrupted[0] / "results.json").read_text())["metrics"]
    assert distributed == pytest.approx(single, rel=1e-4, abs=1e-5)


def test_dim_with_batchnorm_trains_under_torchrun(tmp_path: Path) -> None:
    text = (ROOT / "configs" / "dim-digits.toml").read_text()
    text = text.replace("epochs = 30\nbatch_size = 100", "epochs = 1\nbatch_size = 50")
    text = text.replace("epochs = 30", "epochs = 2")  # the probes
    assert "epochs = 1\nbatch_size = 50" in text
    path = tmp_path / "dim.toml"
    path.write_text(text)
    torchrun(str(path), "--out", str(tmp_path / "run"))
    metrics = json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]
    assert {"test_acc_conv", "test_acc_fc", "test_acc_y"} <= set(metrics)
    assert metrics["test_acc_conv"] > 0.5  # 10 classes: chance is 0.1
