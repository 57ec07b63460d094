"""Datasets by name: ``digits``, ``mnist``, ``mnist5k``, ``cifar10``, ``cifar100``, ``synthetic`` (:func:`dataset`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mireg.data.base import Dataset, Split, Splits, epoch_order, steps_per_epoch, training_batches
from mireg.data.cifar import CIFAR10, CIFAR100
from mireg.data.digits import Digits
from mireg.data.mnist import MNIST
from mireg.data.mnist5k import MNIST5k
from mireg.data.synthetic import Synthetic
from mireg.errors import ConfigError
from mireg.options import validate_options
from mireg.text import did_you_mean

__all__ = [
    "DATASETS",
    "Dataset",
    "Split",
    "Splits",
    "dataset",
    "dataset_class",
    "epoch_order",
    "steps_per_epoch",
    "training_batches",
]

#: Dataset classes by ``[data] name``.
DATASETS: dict[str, type[Dataset]] = {cls.name: cls for cls in (Digits, MNIST, MNIST5k, CIFAR10, CIFAR100, Synthetic)}


def dataset_class(name: str) -> type[Dataset]:
    """The dataset class registered as ``name``; unknown names suggest close ones."""
    cls = DATASETS.get(name)
    if cls is None:
        hint = did_you_mean(name, DATASETS)
        raise ConfigError(f"data.name: unknown dataset {name!r}.{hint} Known datasets: {', '.join(sorted(DATASETS))}")
    return cls


def dataset(name: str, options: Mapping[str, Any] | None = None, *, where: str = "data.options.") -> Dataset:
    """The dataset ``name`` built with validated ``options``; unknown names suggest close ones."""
    cls = dataset_class(name)
    built: Dataset = cls(**validate_options(cls, dict(options or {}), where=where))
    return built
