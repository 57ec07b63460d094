"""CIFAR-10/100 through torchvision's own loader, from small files written in the CIFAR pickle format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from mireg.data import dataset
from mireg.errors import ConfigError

pytest.importorskip("torchvision")

#: dataset name -> (folder, training files, test file, meta file, label key, meta key, classes)
LAYOUT = {
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        "test_batch",
        "batches.meta",
        "labels",
        "label_names",
        10,
    ),
    "cifar100": ("cifar-100-python", ["train"], "test", "meta", "fine_labels", "fine_label_names", 100),
}
PER_FILE = 40


def _batch(path: Path, rows: int, label_key: str, classes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(rows, 3072), dtype=np.uint8)
    labels = [i % classes for i in range(rows)]
    with path.open("wb") as file:
        pickle.dump({"data": data, label_key: labels}, file)


def write_cifar(root: Path, name: str) -> Path:
    """Write a tiny copy of ``name`` in torchvision's on-disk layout under ``root``; return ``root``."""
    folder, train_files, test_file, meta_file, label_key, meta_key, classes = LAYOUT[name]
    directory = root / folder
    directory.mkdir(parents=True)
    rows = PER_FILE if name == "cifar10" else 5 * PER_FILE
    for seed, file in enumerate(train_files):
        _batch(directory / file, rows, label_key, classes, seed)
    _batch(directory / test_file, PER_FILE, label_key, classes, 99)
    with (directory / meta_file).open("wb") as file:
        pickle.dump({meta_key: [f"class{i}" for i in range(classes)]}, file)
    return root


@pytest.mark.parametrize("name", list(LAYOUT))
def test_small_files_load_through_torchvision_without_checksums(tmp_path: Path, name: str) -> None:
    root = write_cifar(tmp_path, name)
    classes = LAYOUT[name][-1]
    data = dataset(name, {"root": str(root), "val_size": 20 if name == "cifar10" else 100, "verify": False}).load()
    assert data.classes == classes and data.input_dim == 3072
    assert len(data.train) + len(data.val) == 5 * PER_FILE and len(data.test) == PER_FILE
    assert 0.0 <= float(data.train.x.min()) and float(data.train.x.max()) <= 1.0
    # Channels first: the first 1024 columns are the red plane of the file's rows, as CIFAR stores them.
    folder, _, test_file, _, label_key, _, _ = LAYOUT[name]
    with (root / folder / test_file).open("rb") as file:
        raw = pickle.load(file, encoding="latin1")
    np.testing.assert_allclose(data.test.x.numpy(), raw["data"] / 255.0, atol=1e-6)
    assert data.test.y.tolist() == raw[label_key]


def test_checksums_are_verified_by_default(tmp_path: Path) -> None:
    root = write_cifar(tmp_path, "cifar10")
    with pytest.raises(ConfigError, match="verify = false"):
        dataset("cifar10", {"root": str(root), "val_size": 20}).load()


def test_missing_files_name_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.options.download"):
        dataset("cifar100", {"root": str(tmp_path)}).check()


def test_val_size_must_leave_training_images(tmp_path: Path) -> None:
    root = write_cifar(tmp_path, "cifar10")
    with pytest.raises(ConfigError, match="val_size"):
        dataset("cifar10", {"root": str(root), "val_size": 500, "verify": False}).load()
