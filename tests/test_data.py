"""Datasets by name: digits splits, the synthetic set, MNIST read through torchvision from idx files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from mireg.data import dataset, epoch_order, training_batches
from mireg.data.base import stratified_indices
from mireg.errors import ConfigError


def test_digits_splits_are_fixed_disjoint_and_stratified() -> None:
    splits = dataset("digits").load()
    again = dataset("digits").load()
    assert torch.equal(splits.test.x, again.test.x)
    assert splits.input_dim == 64 and splits.classes == 10
    assert len(splits.train) + len(splits.val) + len(splits.test) == 1797
    assert 0.0 <= float(splits.train.x.min()) and float(splits.train.x.max()) <= 1.0
    rest, held = stratified_indices(torch.arange(100) % 10, 0.2, seed=0)
    assert len(held) == 20 and set(rest.tolist()).isdisjoint(held.tolist()) and len(rest) == 80
    counts = torch.bincount(splits.test.y, minlength=10).float()
    assert float(counts.min()) >= 0.9 * float(counts.mean())


def test_unknown_dataset_suggests() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'mnist'"):
        dataset("minst")


def test_synthetic_is_seeded() -> None:
    a = dataset("synthetic", {"seed": 3, "train_size": 50}).load()
    b = dataset("synthetic", {"seed": 3, "train_size": 50}).load()
    assert torch.equal(a.train.x, b.train.x) and a.train.x.shape == (50, 16)


def test_batch_order_depends_only_on_seed_and_epoch() -> None:
    assert torch.equal(epoch_order(10, seed=1, epoch=2), epoch_order(10, seed=1, epoch=2))
    assert not torch.equal(epoch_order(100, seed=1, epoch=2), epoch_order(100, seed=1, epoch=3))
    split = dataset("synthetic", {"train_size": 95}).load().train
    full = list(training_batches(split, 10, seed=0, epoch=1))
    rest = list(training_batches(split, 10, seed=0, epoch=1, skip=4))
    assert len(full) == 9 and len(rest) == 5  # the incomplete last batch is dropped
    assert all(torch.equal(a[0], b[0]) for a, b in zip(full[4:], rest, strict=True))


def _idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) in the idx format MNIST ships in: magic, sizes (big endian), data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 20)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, size=(n, 28, 28)))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return tmp_path


def test_mnist_loads_idx_files_through_torchvision(mnist_root: Path) -> None:
    splits = dataset("mnist", {"root": str(mnist_root), "val_size": 10}).load()
    assert splits.input_dim == 784 and splits.classes == 10
    assert (len(splits.train), len(splits.val), len(splits.test)) == (50, 10, 20)
    assert float(splits.train.x.max()) <= 1.0 and splits.train.x.dtype == torch.float32
    raw = (mnist_root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").read_bytes()[16:]
    first = torch.tensor(list(raw[:784]), dtype=torch.float32) / 255
    assert torch.allclose(splits.test.x[0], first)


def test_mnist_without_files_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.options.root"):
        dataset("mnist", {"root": str(tmp_path)}).check()
