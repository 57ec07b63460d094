"""The trainer end to end: outputs, refusing to overwrite, checkpoint contents and errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from mireg.cli import main
from mireg.config import load_config, resolve
from mireg.errors import CheckpointError
from mireg.tasks import DIM
from mireg.training import Trainer, load_checkpoint, results_table

CONFIG = """
[task]
name = "ib"
options = { method = "vib", beta = 0.01 }

[data]
name = "synthetic"
options = { train_size = 200, val_size = 50, test_size = 50 }

[model]
hidden = [32]
z_dim = 4

[train]
epochs = 2
batch_size = 50
seed = 1

[eval]
samples = 3
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("run")
    config = root / "vib.toml"
    config.write_text(CONFIG, encoding="utf-8")
    assert main(["run", str(config), "--out", str(root / "out")]) == 0
    return config, root / "out"


def test_run_writes_metrics_curves_results(finished: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, out = finished
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert {"train_loss", "train_kl", "val_error"} <= set(json.loads(lines[-1]))
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "vib" and results["epochs"] == 2 and 0 <= results["metrics"]["test_error"] <= 1


def test_checkpoint_holds_only_weights_only_content(finished: tuple[Path, Path]) -> None:
    payload = torch.load(finished[1] / "checkpoint.pt", weights_only=True)
    assert payload["epoch"] == 2 and payload["step"] == 0
    assert {"torch", "numpy", "python"} <= set(payload["rng"]) and set(payload["optimizers"]) == {"model"}


def test_existing_run_is_not_overwritten_and_resume_of_a_finished_run_repeats_results(
    finished: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, out = finished
    before = json.loads((out / "results.json").read_text())
    assert main(["run", str(config), "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["run", str(config), "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "results.json").read_text())["metrics"] == before["metrics"]


def test_resume_with_another_config_is_refused(finished: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    config, out = finished
    assert main(["run", str(config), "--out", str(out), "--resume", "--seed", "5"]) == 2
    assert "train.seed" in capsys.readouterr().err


def test_corrupt_foreign_and_missing_checkpoints(tmp_path: Path, finished: tuple[Path, Path]) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes((finished[1] / "checkpoint.pt").read_bytes()[:300])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match="not a mireg checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")


def test_resume_of_a_corrupt_checkpoint_is_a_clear_cli_error(
    tmp_path: Path, finished: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "checkpoint.pt").write_bytes(b"not a zip file at all")
    assert main(["run", str(finished[0]), "--out", str(tmp_path), "--resume"]) == 2
    assert "corrupt or not a checkpoint" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_into(tmp_path: Path, stream: io.StringIO) -> dict[str, object]:
    config = tmp_path / "vib.toml"
    config.write_text(CONFIG, encoding="utf-8")
    return Trainer(resolve(load_config(config)), tmp_path / "out", stream=stream).run()


def test_a_stream_that_is_not_a_terminal_gets_one_line_per_epoch(tmp_path: Path) -> None:
    log = io.StringIO()
    run_into(tmp_path, log)
    rows = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    text = log.getvalue()
    assert "\r" not in text and len(text.splitlines()) == 2  # epochs = 2
    for line, row in zip(text.splitlines(), rows, strict=True):
        expected = f"epoch {row['epoch']}/2, train_loss {row['train_loss']:.4f}, val_error {row['val_error']:.4f} ("
        assert line.startswith(expected) and line.endswith(" s)")


def test_a_terminal_gets_a_progress_bar(tmp_path: Path) -> None:
    terminal = _Terminal()
    run_into(tmp_path, terminal)
    assert "\r" in terminal.getvalue() and "epoch 2/2: 100%" in terminal.getvalue()


def test_results_table_shows_what_the_task_describes() -> None:
    results = {
        "task": "dim",
        "pair": "conv",
        "prior_matching": False,
        "estimator": "jsd",
        "dataset": "digits",
        "seed": 0,
        "epochs": 1,
        "runtime_s": 2.0,
        "metrics": {"test_acc_y": 0.5, "test_acc_conv": 0.75, "val_acc_y": 0.25, "train_loss": 1.0},
    }
    rows = results_table(results, DIM()).splitlines()[2:]
    assert rows == [
        "| task | dim |",
        "| pair | conv |",
        "| prior_matching | False |",
        "| estimator | jsd |",
        "| dataset | digits |",
        "| seed | 0 |",
        "| epochs | 1 |",
        "| test_acc_y | 0.5 |",
        "| test_acc_conv | 0.75 |",
        "| val_acc_y | 0.25 |",
        "| runtime | 2.0 s |",
    ]
