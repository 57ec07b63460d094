"""CIFAR-10 and CIFAR-100 through torchvision, as flattened ``[N, 3072]`` images (C, H, W order).

torchvision reads the python-pickle batches from ``<root>/cifar-10-batches-py`` (CIFAR-10) or
``<root>/cifar-100-python`` (CIFAR-100) and checks each file's md5 against the canonical release.
``verify = false`` keeps torchvision's own loader but gives it no checksums: torchvision's
``check_integrity(path, md5=None)`` then only requires the files to exist. That loads smaller
files in the same format (the tests' generated ones, or a subset) without any patching.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch

from mireg.data.base import HeldOutValidation, Split, Splits
from mireg.errors import ConfigError


def _torchvision_class(name: str, verify: bool) -> Any:
    """torchvision's dataset class ``name``; with ``verify=False`` a subclass whose file lists carry no md5."""
    from torchvision import datasets

    cls = getattr(datasets, name)
    if verify:
        return cls
    unchecked = {
        "train_list": [[file, None] for file, _ in cls.train_list],
        "test_list": [[file, None] for file, _ in cls.test_list],
        "meta": {**cls.meta, "md5": None},
    }
    return type(f"Unverified{name}", (cls,), unchecked)


class CIFAR10(HeldOutValidation):
    """CIFAR-10: 50000 training and 10000 test 32×32 colour images, as ``[N, 3072]`` inputs in [0, 1].

    Options:
      root: data directory holding torchvision's cifar-10-batches-py (cifar-100-python for CIFAR-100)
      download: download the files when they are missing
      val_size: training images held out (stratified) as the validation split
      split_seed: seed of the validation split
      verify: check the files' md5 against the canonical release (false: any files in the CIFAR format)
    """

    name = "cifar10"
    #: The torchvision class that reads the files.
    torchvision_name: ClassVar[str] = "CIFAR10"
    classes: ClassVar[int] = 10

    def __init__(
        self,
        *,
        root: str = "data",
        download: bool = False,
        val_size: int = 5000,
        split_seed: int = 0,
        verify: bool = True,
    ) -> None:
        super().__init__(root=root, download=download, val_size=val_size, split_seed=split_seed)
        self.verify = verify

    @property
    def folder(self) -> Path:
        """Where torchvision looks for the pickled batches."""
        cls = _torchvision_class(self.torchvision_name, verify=True)
        return Path(self.root).expanduser() / cls.base_folder

    def files(self) -> list[str]:
        """Names of the files torchvision reads from :attr:`folder`."""
        cls = _torchvision_class(self.torchvision_name, verify=True)
        return [file for file, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]

    def check(self) -> None:
        missing = [name for name in self.files() if not (self.folder / name).is_file()]
        if missing and not self.download:
            raise ConfigError(
                f"data.options.root: {self.name} files {missing} are missing in {self.folder}; set "
                f"data.options.download = true or point data.options.root at the directory holding {self.folder.name}"
            )

    def load(self) -> Splits:
        self.check()
        cls = _torchvision_class(self.torchvision_name, self.verify)
        root = str(Path(self.root).expanduser())
        try:
            train = cls(root, train=True, download=self.download)
            test = cls(root, train=False, download=self.download)
        except RuntimeError as error:  # torchvision: "Dataset not found or corrupted"
            hint = " (files that are not the canonical release need data.options.verify = false)" if self.verify else ""
            message = f"data.options.root: torchvision cannot read {self.name} in {root}: {error}{hint}"
            raise ConfigError(message) from None
        train_split, val_split = self.hold_out(_flat(train.data), torch.as_tensor(train.targets, dtype=torch.long))
        test_split = Split(_flat(test.data), torch.as_tensor(test.targets, dtype=torch.long))
        return Splits(train_split, val_split, test_split, self.classes)


class CIFAR100(CIFAR10):
    """CIFAR-100 (fine labels): 50000 training and 10000 test 32×32 colour images, as ``[N, 3072]`` in [0, 1].

    Options:
      root: data directory holding torchvision's cifar-100-python
      download: download the files when they are missing
      val_size: training images held out (stratified) as the validation split
      split_seed: seed of the validation split
      verify: check the files' md5 against the canonical release (false: any files in the CIFAR format)
    """

    name = "cifar100"
    torchvision_name = "CIFAR100"
    classes = 100


def _flat(images: Any) -> torch.Tensor:
    """torchvision's ``[N, 32, 32, 3]`` uint8 array as float ``[N, 3072]`` in [0, 1], channels first."""
    return torch.as_tensor(images).permute(0, 3, 1, 2).reshape(len(images), -1).to(torch.float32) / 255.0
