"""MNIST through torchvision, flattened to ``[N, 784]`` (the permutation-invariant task)."""

from __future__ import annotations

from pathlib import Path

import torch

from mireg.data.base import HeldOutValidation, Split, Splits
from mireg.errors import ConfigError

#: The uncompressed files torchvision reads from ``<root>/MNIST/raw``.
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class MNIST(HeldOutValidation):
    """MNIST digits, 60000 training and 10000 test images, as ``[N, 784]`` inputs in [0, 1].

    Options:
      root: data directory; torchvision keeps the files in <root>/MNIST/raw
      download: download the files when they are missing
      val_size: training images held out (stratified) as the validation split
      split_seed: seed of the validation split
    """

    name = "mnist"

    @property
    def raw_folder(self) -> Path:
        return Path(self.root).expanduser() / "MNIST" / "raw"

    def check(self) -> None:
        missing = [name for name in RAW_FILES if not (self.raw_folder / name).is_file()]
        if missing and not self.download:
            raise ConfigError(
                f"data.options.root: MNIST files {missing} are missing in {self.raw_folder}; "
                "set data.options.download = true or point data.options.root at a directory holding MNIST/raw"
            )

    def load(self) -> Splits:
        from torchvision.datasets import MNIST as TorchvisionMNIST

        self.check()
        root = str(Path(self.root).expanduser())
        train = TorchvisionMNIST(root, train=True, download=self.download)
        test = TorchvisionMNIST(root, train=False, download=self.download)
        x, y = train.data.flatten(1).to(torch.float32) / 255.0, train.targets.to(torch.long)
        train_split, val_split = self.hold_out(x, y)
        x_test = test.data.flatten(1).to(torch.float32) / 255.0
        return Splits(train_split, val_split, Split(x_test, test.targets.to(torch.long)), 10)
