"""What every dataset gives the trainer: labelled tensors split into train, validation and test."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from typing import ClassVar

import attrs
import torch
from torch import Tensor

from mireg.errors import ConfigError


@attrs.frozen
class Split:
    """One split: inputs ``x`` ``[N, d]`` (flattened, floating) and integer labels ``y`` ``[N]``."""

    x: Tensor
    y: Tensor

    def __attrs_post_init__(self) -> None:
        if self.x.ndim != 2 or self.y.ndim != 1 or self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"a split needs x [N, d] and y [N], got {tuple(self.x.shape)} and {tuple(self.y.shape)}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Split:
        """The split with ``x`` in ``dtype`` and both tensors on ``device``."""
        return Split(self.x.to(device=device, dtype=dtype), self.y.to(device=device, dtype=torch.long))

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Consecutive ``(x [b, d], y [b])`` batches in order, the last one possibly smaller."""
        for start in range(0, len(self), batch_size):
            yield self.x[start : start + batch_size], self.y[start : start + batch_size]


@attrs.frozen
class Splits:
    """A dataset ready for training: ``train``, ``val`` (for tuning) and ``test`` splits."""

    train: Split
    val: Split
    test: Split
    classes: int

    @property
    def input_dim(self) -> int:
        return int(self.train.x.shape[1])

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Splits:
        train, val, test = (part.to(device, dtype) for part in (self.train, self.val, self.test))
        return Splits(train, val, test, self.classes)

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {name!r}")
        split: Split = getattr(self, name)
        return split


def epoch_order(size: int, *, seed: int, epoch: int) -> Tensor:
    """The shuffled order ``[size]`` of the training rows in ``epoch``, a function of (seed, epoch) only.

    It comes from a generator of its own, so it needs no saved state: a resumed run sees the
    same order, and the global RNG is left untouched. Any integer seed works: the generator's
    seed is taken mod 2**64, as torch itself takes negative seeds.
    """
    generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**64)
    return torch.randperm(size, generator=generator)


def training_batches(
    split: Split, batch_size: int, *, seed: int, epoch: int, skip: int = 0
) -> Iterator[tuple[Tensor, Tensor]]:
    """Shuffled full batches ``(x [batch_size, d], y [batch_size])`` of ``split`` for ``epoch``.

    The incomplete last batch is dropped (score estimators want equal batches); the first
    ``skip`` batches are skipped, so an epoch interrupted after ``skip`` steps resumes exactly.
    """
    order = epoch_order(len(split), seed=seed, epoch=epoch).to(split.x.device)
    for index in range(skip, len(split) // batch_size):
        rows = order[index * batch_size : (index + 1) * batch_size]
        yield split.x[rows], split.y[rows]


def steps_per_epoch(split: Split, batch_size: int) -> int:
    return len(split) // batch_size


class Dataset(abc.ABC):
    """A dataset selected by ``[data] name``; its options are keyword-only ``__init__`` parameters."""

    name: ClassVar[str]

    def check(self) -> None:  # noqa: B027 - most datasets need no files
        """Raise :class:`~mireg.errors.ConfigError` when files the dataset needs are missing."""

    @abc.abstractmethod
    def load(self) -> Splits:
        """The splits on the CPU, ``x`` as float32 ``[N, d]``, ``y`` as int64 ``[N]``."""

    def train_rows(self) -> int | None:
        """Rows in the training split, for ``mireg check`` to compare ``train.batch_size`` with
        without training; ``None`` when only loading (or downloading) the data would tell, and then
        ``mireg run`` compares them once the data are loaded, before the first step."""
        return None


def stratified_indices(labels: Tensor, fraction: float, *, seed: int) -> tuple[Tensor, Tensor]:
    """Split row indices ``[N]`` into (rest, held-out) with ``fraction`` of each class held out."""
    generator = torch.Generator().manual_seed(seed)
    held: list[Tensor] = []
    rest: list[Tensor] = []
    for label in labels.unique(sorted=True):
        rows = torch.nonzero(labels == label).flatten()
        rows = rows[torch.randperm(len(rows), generator=generator)]
        count = round(fraction * len(rows))
        held.append(rows[:count])
        rest.append(rows[count:])
    return torch.cat(rest).sort().values, torch.cat(held).sort().values


def stratified_splits(
    x: Tensor, y: Tensor, *, test_fraction: float, val_fraction: Callable[[int], float], seed: int, classes: int
) -> Splits:
    """Train, validation and test splits of ``x`` ``[N, d]``, ``y`` ``[N]``, each stratified by class.

    ``test_fraction`` of each class is held out as the test split (seed ``seed``), then
    ``val_fraction(rest)`` of each class of the ``rest`` remaining rows as the validation split
    (seed ``seed + 1``); a function of ``rest`` so a dataset can give a share or a number of rows.
    """
    rest, test = stratified_indices(y, test_fraction, seed=seed)
    train_rows, val_rows = stratified_indices(y[rest], val_fraction(len(rest)), seed=seed + 1)
    train, val = rest[train_rows], rest[val_rows]
    return Splits(Split(x[train], y[train]), Split(x[val], y[val]), Split(x[test], y[test]), classes=classes)


class HeldOutValidation(Dataset):
    """A dataset shipped as train and test sets whose validation split is ``val_size`` training rows
    held out, stratified by class with ``split_seed``; each subclass documents these options."""

    def __init__(
        self, *, root: str = "data", download: bool = False, val_size: int = 5000, split_seed: int = 0
    ) -> None:
        if val_size < 1:
            raise ValueError(f"val_size must be a positive number of images, got {val_size}")
        self.root = root
        self.download = download
        self.val_size = val_size
        self.split_seed = split_seed

    def hold_out(self, x: Tensor, y: Tensor) -> tuple[Split, Split]:
        """The (train, val) splits of the training set ``x`` ``[N, d]``, ``y`` ``[N]``."""
        if self.val_size >= len(y):
            raise ConfigError(f"data.options.val_size = {self.val_size} leaves no training images (there are {len(y)})")
        rest, val = stratified_indices(y, self.val_size / len(y), seed=self.split_seed)
        return Split(x[rest], y[rest]), Split(x[val], y[val])
