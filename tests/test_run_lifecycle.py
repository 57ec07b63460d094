"""The run lifecycle: ``mireg check`` and ``mireg run`` refuse bad batch sizes, seeds, devices and
output folders before training, a run never overwrites results silently, a concurrent run into
the same folder fails at once, divergence is a ``TrainingError``, and a failed write keeps the
previous files."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

import mireg
import mireg.files
from mireg import mige
from mireg.cli import main
from mireg.config import TrainSettings, check_batch_size
from mireg.data import epoch_order
from mireg.data.synthetic import Synthetic
from mireg.errors import CheckpointError, ConfigError
from mireg.training import Trainer, load_checkpoint

#: A tiny run without an estimator (a few seconds); {extra} goes into [train].
VIB = """
[task]
name = "ib"
options = {{ method = "vib", beta = 0.01 }}

[data]
name = "synthetic"
options = {{ train_size = 200, val_size = 50, test_size = 50 }}

[model]
hidden = [16]
z_dim = 4

[train]
epochs = {epochs}
batch_size = 50
seed = 1
{extra}

[eval]
samples = 2
"""

#: The same with MIGE (on SSGE), whose input checks see a diverging encoder's NaN first.
MIGE = VIB.replace('method = "vib"', 'method = "mi"').replace(
    "[train]", '[estimator]\nname = "mige"\noptions = {{ score = "ssge" }}\n\n[train]'
)


def config(tmp_path: Path, extra: str = "", *, epochs: int = 1, template: str = VIB, name: str = "run.toml") -> Path:
    path = tmp_path / name
    path.write_text(template.format(epochs=epochs, extra=extra), encoding="utf-8")
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run the command, which must fail with exit status 2 and one line on stderr besides progress bars."""
    code, _, err = cli(capsys, *argv)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("epoch ")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"mireg {argv[0]}: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished two-epoch run: its config and its --out."""
    root = tmp_path_factory.mktemp("finished")
    path = config(root, epochs=2)
    assert main(["run", str(path), "--out", str(root / "out")]) == 0
    return path, root / "out"


def copy(run: Path, to: Path) -> Path:
    """A copy of the finished run's folder, for tests that continue or damage it."""
    shutil.copytree(run, to)
    return to


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


# ----------------------------------------------------------------- batch size, seed, device, encoding
def test_batch_larger_than_the_split_fails_check_and_run_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, template=VIB.replace("batch_size = 50", "batch_size = 500"))
    err = one_line_error(capsys, "check", str(path))
    assert "train.batch_size = 500 exceeds the 200 training rows; valid range: 2 <= batch_size <= 200" in err
    err = one_line_error(capsys, "run", str(path), "--out", str(tmp_path / "out"))
    assert "train.batch_size = 500" in err and "valid range" in err
    assert not (tmp_path / "out" / "metrics.jsonl").exists()


def test_batch_too_small_for_an_estimator_names_the_estimator_and_the_range() -> None:
    class NeedsEight(mireg.MIGradientEstimator):
        name = "needs-eight"

        @classmethod
        def min_batch_size(cls, options: Mapping[str, Any] | None = None) -> int:
            return 8

    settings = TrainSettings(batch_size=4)
    with pytest.raises(ConfigError) as info:
        check_batch_size(settings, 200, estimator_cls=NeedsEight)
    assert str(info.value) == (
        "train.batch_size = 4 is too small: the estimator 'needs-eight' needs at least 8 rows per batch; "
        "valid range: 8 <= batch_size <= 200"
    )
    with pytest.raises(ConfigError, match=r"on 4 processes \(16 rows in all\) exceeds the 10 training rows"):
        check_batch_size(settings, 10, world=4)
    check_batch_size(settings, 200, estimator_cls=NeedsEight, world=2)  # 8 rows per global batch: fine


def test_mige_needs_three_rows_unless_in_raw_coordinates() -> None:
    settings = TrainSettings(batch_size=2)
    with pytest.raises(ConfigError, match="the estimator 'mige' needs at least 3 rows per batch"):
        check_batch_size(settings, 200, estimator_cls=mige.MIGE)
    with pytest.raises(ConfigError, match="at least 3 rows"):
        check_batch_size(settings, 200, estimator_cls=mige.MIGE, estimator_options={"precondition": "diag"})
    check_batch_size(settings, 200, estimator_cls=mige.MIGE, estimator_options={"precondition": "none"})
    assert mige.MIGE.min_batch_size() == mige.MIN_PRECONDITIONED_BATCH == 3


@pytest.mark.parametrize("seed", [18_000_000_000_000, -(2**63), 2**63 - 1])
def test_huge_seeds_run(tmp_path: Path, seed: int) -> None:
    path = config(tmp_path)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--seed", str(seed)]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["seed"] == seed and 0 <= results["metrics"]["test_error"] <= 1


def test_seed_outside_64_bits_is_refused_with_the_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = one_line_error(capsys, "check", str(config(tmp_path)), "--seed", str(2**63))
    assert "train.seed must be a signed 64-bit integer, in [-2**63, 2**63 - 1]" in err and str(2**63) in err


def test_epoch_order_is_a_permutation_for_every_seed_and_unchanged_for_small_ones() -> None:
    for seed in (0, 7, -3, 18_000_000_000_000, 2**63 - 1, -(2**63)):
        order = epoch_order(50, seed=seed, epoch=3)
        assert sorted(order.tolist()) == list(range(50))
    before = torch.randperm(50, generator=torch.Generator().manual_seed(7 * 1_000_003 + 3))
    assert torch.equal(epoch_order(50, seed=7, epoch=3), before)  # what runs with small seeds saw so far
    assert not torch.equal(epoch_order(50, seed=2**63 - 1, epoch=0), epoch_order(50, seed=2**63 - 1, epoch=1))


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cudafoo", "train.device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got 'cudafoo'"),
        ("cuda:", "got 'cuda:'"),
        ("cuda", "train.device = 'cuda' but CUDA is not available on this machine; use 'cpu' or 'auto'"),
    ],
)
def test_device_strings_fail_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], device: str, message: str
) -> None:
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert message in one_line_error(capsys, "check", str(config(tmp_path)), "--device", device)


def test_config_with_byte_order_mark_is_read_and_other_encodings_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    code, out, _ = cli(capsys, "check", str(path))
    assert code == 0 and "ok" in out
    latin = tmp_path / "latin.toml"
    latin.write_bytes(path.read_bytes()[3:].replace(b"[eval]", "# café\n[eval]".encode("latin-1")))
    line = latin.read_bytes().split(b"\n").index(b"# caf\xe9") + 1
    err = one_line_error(capsys, "check", str(latin))
    assert f"{latin}: not UTF-8 (byte 0xe9 at line {line}); TOML files must be UTF-8" in err


# ----------------------------------------------------------------- --out
def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write in: a read-only one, or (as root, who ignores modes) sysfs."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    sysfs = Path("/sys")
    try:
        (sysfs / "mireg-probe").touch()
    except OSError:
        return sysfs
    pytest.skip("no folder here refuses writes to this process")


@pytest.mark.parametrize("command", ["check", "run"])
def test_bad_out_is_refused_before_any_data_are_loaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    def load(self: Synthetic) -> Any:
        raise AssertionError("the data were loaded")

    monkeypatch.setattr(Synthetic, "load", load)
    path = config(tmp_path)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    cases = {
        "": "--out is empty; give a folder path",
        str(a_file): f"--out {a_file} is a file; choose a folder path",
        str(a_file / "sub"): f"{a_file} is a file, so --out {a_file / 'sub'} cannot be made",
        str(unwritable_folder(tmp_path) / "out"): "cannot write in ",
    }
    for out, message in cases.items():
        assert message in one_line_error(capsys, command, str(path), "--out", out)
    assert a_file.read_text() == "not a folder"


def test_fresh_run_refuses_a_folder_with_results_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, out = config(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text('{"earlier": true}\n')
    (out / "metrics.jsonl").write_text('{"epoch": 1}\n')
    before = snapshot(out)
    for command in ("check", "run"):
        err = one_line_error(capsys, command, str(path), "--out", str(out))
        assert f"{out} already holds a run (metrics.jsonl, results.json); pass --force to overwrite it" in err
        assert "--resume" not in err  # there is no checkpoint to continue
    assert "no checkpoint at" in one_line_error(capsys, "run", str(path), "--out", str(out), "--resume")
    assert "pass one of them" in one_line_error(capsys, "run", str(path), "--out", str(out), "--resume", "--force")
    assert snapshot(out) == before
    code, _, err = cli(capsys, "run", str(path), "--out", str(out), "--force")
    assert code == 0, err
    assert "earlier" not in (out / "results.json").read_text() and (out / "checkpoint.pt").is_file()
    assert not (out / ".mireg.lock").exists()


def test_resume_compares_the_resolved_configuration(
    finished: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, out = finished[0], copy(finished[1], tmp_path / "out")
    spelled = tmp_path / "spelled.toml"  # the same run with defaults written out, and epochs extended
    spelled.write_text(
        path.read_text().replace("epochs = 2", 'epochs = 3\noptimizer = "adam"\nlr = 0.001\nweight_decay = 0')
    )
    code, _, err = cli(capsys, "run", str(spelled), "--out", str(out), "--resume")
    assert code == 0, err
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    other = tmp_path / "other.toml"
    other.write_text(path.read_text().replace("epochs = 2", 'epochs = 3\noptimizer = "sgd"'))
    err = one_line_error(capsys, "run", str(other), "--out", str(out), "--resume")
    assert "another configuration (differences: train.optimizer)" in err


# ----------------------------------------------------------------- the lock
def mireg_process(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "mireg", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )


def test_a_second_concurrent_run_into_the_same_out_fails_at_once(tmp_path: Path) -> None:
    path, out = config(tmp_path, epochs=100_000), tmp_path / "out"
    first = mireg_process("run", str(path), "--out", str(out))
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists():  # the first run holds the lock and has trained an epoch
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()[1].decode()
        time.sleep(0.01)
    for command in (["run", str(path), "--out", str(out), "--resume"], ["check", str(path), "--out", str(out)]):
        second = mireg_process(*command)
        _, err = second.communicate(timeout=120)
        message = err.decode()
        assert second.returncode == 2 and len(message.strip().splitlines()) == 1, message
        assert f"{out} is in use by another mireg run (pid {first.pid} on host " in message
        assert "started 20" in message and "choose another --out" in message
        assert first.poll() is None  # the first run goes on
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM, err.decode()
    assert not (out / ".mireg.lock").exists()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    out = tmp_path / "out"
    out.mkdir()
    record = {"pid": int(dead.stdout), "host": "here", "started": "2026-01-01T00:00:00Z"}
    (out / ".mireg.lock").write_text(json.dumps(record))
    code, _, err = cli(capsys, "run", str(config(tmp_path)), "--out", str(out))
    assert code == 0, err
    assert (out / "results.json").is_file() and not (out / ".mireg.lock").exists()


# ----------------------------------------------------------------- checkpoints
def damaged(finished: tuple[Path, Path], tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    payload = torch.load(finished[1] / "checkpoint.pt", weights_only=True)
    change(payload)
    path = tmp_path / "checkpoint.pt"
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.pop("config"), "the field 'config' is missing"),
        (lambda p: p.pop("rng"), "the field 'rng' is missing"),
        (lambda p: p["rng"]["numpy"].pop("pos"), "the field 'rng.numpy.pos' is missing"),
        (lambda p: p.update(epoch="2"), "the field 'epoch' must be an int >= 0, got str '2'"),
        (lambda p: p.update(epoch=True), "the field 'epoch' must be an int >= 0, got bool 'True'"),
        (lambda p: p.update(step=-1), "the field 'step' must be an int >= 0, got int '-1'"),
        (lambda p: p.update(config=[1]), "the field 'config' must be a table, got list"),
        (lambda p: p["rng"].update(torch=[0]), "the field 'rng.torch' must be Tensor, got list"),
    ],
)
def test_damaged_checkpoint_fields_are_named(
    finished: tuple[Path, Path], tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    path = damaged(finished, tmp_path, change)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value).startswith(f"{path} is damaged: {message}")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p["rng"].update(torch=torch.zeros(3, dtype=torch.uint8)), "the field 'rng' holds no RNG states"),
        (lambda p: p["config"].pop("task"), "the configuration saved in"),
    ],
)
def test_resume_of_a_checkpoint_with_bad_contents_is_a_one_line_error(
    finished: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    path = damaged(finished, tmp_path, change)
    err = one_line_error(capsys, "run", str(finished[0]), "--out", str(path.parent), "--resume")
    assert str(path) in err and message in err


# ----------------------------------------------------------------- failed writes
class FullDisk(io.FileIO):
    """A file on a full disk: every write fails as the kernel's write(2) would."""

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("victim", ["checkpoint.pt", "metrics.jsonl"])
def test_full_disk_names_the_file_and_keeps_the_previous_one(
    finished: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    victim: str,
) -> None:
    path, out = finished[0], copy(finished[1], tmp_path / "out")
    longer = tmp_path / "longer.toml"  # one more epoch: its checkpoint and metrics cannot be written
    longer.write_text(path.read_text().replace("epochs = 2", "epochs = 3"))
    before = snapshot(out)

    def full_open(file: Any, mode: str = "r", **kwargs: Any) -> Any:
        if Path(file).name.startswith(f".{victim}.") and "w" in mode:
            return FullDisk(file, "w")
        return open(file, mode, **kwargs)

    monkeypatch.setattr(mireg.files, "open", full_open, raising=False)
    err = one_line_error(capsys, "run", str(longer), "--out", str(out), "--resume")
    assert f"cannot write {out / victim} (No space left on device); its previous version, if any, is intact" in err
    assert snapshot(out) == before  # no temporary file left behind either
    monkeypatch.undo()
    code, _, err = cli(capsys, "run", str(longer), "--out", str(out), "--resume")
    assert code == 0, err
    assert json.loads((out / "results.json").read_text())["epochs"] == 3


# ----------------------------------------------------------------- divergence
@pytest.mark.parametrize(
    ("template", "optimizer", "lr", "seen"),
    [
        (VIB, "sgd", 1e4, "(the loss is inf)"),  # the loss is the first non-finite value
        (MIGE, "sgd", 1e4, "(the gradient of the batch's Gaussian mixture"),  # σ² leaves float32 first
        # At lr 1e8 the loss stays finite (about 1e25 over 6 epochs): MIGE standardises each coordinate.
        (MIGE, "adam", 1e30, "(z contains"),  # the encoder overflows float32 at step 2
    ],
    ids=["loss-sgd", "mige-sgd", "mige-adam"],
)
def test_divergence_is_a_training_error_advising_a_lower_lr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], template: str, optimizer: str, lr: float, seen: str
) -> None:
    extra = f'optimizer = "{optimizer}"\nlr = {lr}'
    path = config(tmp_path, extra, epochs=6, template=template.replace("seed = 1", "seed = 0"))
    path.write_text(path.read_text().replace("batch_size = 50", "batch_size = 20"))
    err = one_line_error(capsys, "run", str(path), "--out", str(tmp_path / "out"))
    assert "error: the loss became non-finite in epoch " in err and seen in err
    assert f"Training diverged: try a lower train.lr (now {lr:g})" in err


def test_a_non_finite_gradient_of_a_finite_loss_stops_before_the_step(tmp_path: Path) -> None:
    weight = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    what = Trainer._apply({"model": weight.sqrt().sum()}, {"model": [weight]}, {"model": optimizer})  # d√w = inf at 0
    assert what == "a gradient of the 'model' parameters is non-finite"
    assert torch.equal(weight.detach(), torch.zeros(3))
