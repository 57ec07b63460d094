"""scikit-learn's bundled 8×8 handwritten digits (1797 images, 10 classes): offline."""

from __future__ import annotations

import torch

from mireg.data.base import Dataset, Splits, stratified_splits


class Digits(Dataset):
    """The 8×8 digits as ``[N, 64]`` inputs in [0, 1], with fixed stratified splits.

    Options:
      test_fraction: share of each class held out as the test set
      val_fraction: share of each class of the remaining rows held out for validation (tuning)
      split_seed: seed of the stratified splits (fixed, so every run sees the same test set)
    """

    name = "digits"

    def __init__(self, *, test_fraction: float = 0.25, val_fraction: float = 0.2, split_seed: int = 0) -> None:
        for label, value in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
            if not 0.0 < value < 1.0:
                raise ValueError(f"{label} must be in (0, 1), got {value}")
        self.test_fraction = test_fraction
        self.val_fraction = val_fraction
        self.split_seed = split_seed

    def train_rows(self) -> int:
        return len(self.load().train)  # the bundled digits load offline in milliseconds

    def load(self) -> Splits:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = torch.as_tensor(bunch.data, dtype=torch.float32) / 16.0
        y = torch.as_tensor(bunch.target, dtype=torch.long)
        return stratified_splits(
            x,
            y,
            test_fraction=self.test_fraction,
            val_fraction=lambda rest: self.val_fraction,
            seed=self.split_seed,
            classes=10,
        )
