"""A run stopped by SIGINT/SIGTERM (or killed) and resumed ends exactly like an uninterrupted run.

The runs are real ``mireg run`` processes; the estimator is MINE, whose critic (its own
optimizer) and moving average (a buffer) must both come back from the checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mireg_mine")

CONFIG = """
[task]
name = "ib"
options = { method = "mi", beta = 0.05 }

[data]
name = "synthetic"
options = { train_size = 400, val_size = 50, test_size = 100 }

[model]
hidden = [32]
z_dim = 4

[estimator]
name = "mine"
options = { hidden = 32, layers = 1, embed_dim = 8 }

[train]
epochs = 8
batch_size = 20
seed = 7
critic_lr = 2e-3
lr_decay = 0.9
decay_every = 3

[eval]
samples = 2
"""


def mireg(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "mireg", "run", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )


def finish(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    _, err = process.communicate(timeout=600)
    return process.returncode, err.decode(errors="replace")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resume") / "mine.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(config: Path) -> dict[str, object]:
    out = config.parent / "uninterrupted"
    code, err = finish(mireg(str(config), "--out", str(out)))
    assert code == 0, err
    return {"results": json.loads((out / "results.json").read_text()), "metrics": (out / "metrics.jsonl").read_text()}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["term", "int", "kill"])
def test_interrupted_and_resumed_run_matches_uninterrupted(
    config: Path, reference: dict[str, object], signum: signal.Signals
) -> None:
    out = config.parent / f"stopped-{signum.name}"
    process = mireg(str(config), "--out", str(out))
    deadline = time.monotonic() + 300
    while not (out / "checkpoint.pt").exists():  # the first epoch's checkpoint
        assert process.poll() is None and time.monotonic() < deadline, finish(process)[1]
        time.sleep(0.005)
    process.send_signal(signum)
    code, err = finish(process)
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 128 + signum, err
        assert "checkpoint written" in err and "--resume" in err
    assert not (out / "results.json").exists()

    code, err = finish(mireg(str(config), "--out", str(out), "--resume"))
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"] == reference["results"]["metrics"]  # type: ignore[index]
    assert (out / "metrics.jsonl").read_text() == reference["metrics"]
