"""A Gaussian-mixture classification set generated from a seed: for quick runs and tests."""

from __future__ import annotations

import torch

from mireg.data.base import Dataset, Split, Splits


class Synthetic(Dataset):
    """Classes drawn as isotropic Gaussians ``N(μ_c, I)`` around random means in ``dim`` dimensions.

    Options:
      classes: number of classes
      dim: input width d
      separation: norm of each class mean (larger is easier)
      train_size: training rows
      val_size: validation rows
      test_size: test rows
      seed: seed of the means and the samples
    """

    name = "synthetic"

    def __init__(
        self,
        *,
        classes: int = 4,
        dim: int = 16,
        separation: float = 3.0,
        train_size: int = 800,
        val_size: int = 200,
        test_size: int = 400,
        seed: int = 0,
    ) -> None:
        if classes < 2 or dim < 1 or min(train_size, val_size, test_size) < 1:
            raise ValueError("synthetic data needs classes >= 2, dim >= 1 and at least one row per split")
        self.classes, self.dim, self.separation = classes, dim, separation
        self.train_size, self.val_size, self.test_size, self.seed = train_size, val_size, test_size, seed

    def train_rows(self) -> int:
        return self.train_size

    def load(self) -> Splits:
        generator = torch.Generator().manual_seed(self.seed)
        means = torch.randn(self.classes, self.dim, generator=generator)
        means = self.separation * means / means.norm(dim=1, keepdim=True)

        def draw(size: int) -> Split:
            y = torch.randint(self.classes, (size,), generator=generator)
            return Split(means[y] + torch.randn(size, self.dim, generator=generator), y)

        return Splits(draw(self.train_size), draw(self.val_size), draw(self.test_size), self.classes)
