"""Run configurations: TOML files with the blocks ``[task] [data] [model] [estimator] [train] [eval]``.

A block that selects something by name holds ``name`` and an ``options`` table::

    [task]
    name = "ib"
    options = { method = "mi", beta = 1e-3 }

    [estimator]               # any registered MI-gradient estimator
    name = "mige"
    options = { score = "ssge" }

``[model]`` and ``[eval]`` hold the options of the task's model and evaluation, ``[train]`` the
trainer's (:class:`TrainSettings`). :func:`load_config` reads and checks the file's shape;
:func:`resolve` looks every name up and validates every option, so ``mireg check`` catches a
typo without training. Every error is a :class:`~mireg.errors.ConfigError` naming the dotted
path of the bad key (``estimator.options.threshold``) and, where one is close, the right key.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from mireg.errors import ConfigError, MiregError
from mireg.options import validate_options
from mireg.text import did_you_mean

if TYPE_CHECKING:
    from mireg.tasks import Task

BLOCKS = ("task", "data", "model", "estimator", "train", "eval")
_NAMED = ("task", "data", "estimator")
_REQUIRED = ("task", "data")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """The ``[train]`` block.

    Options:
      epochs: number of passes over the training split
      batch_size: rows per step (the incomplete last batch of an epoch is dropped)
      optimizer: "adam" or "sgd" (with momentum 0.9)
      lr: initial learning rate of the model
      critic_lr: learning rate of the estimator's own parameters (a MINE critic); None: lr
      weight_decay: L2 penalty of the optimizers
      lr_decay: factor applied to the learning rates every decay_every epochs
      decay_every: epochs between two decays
      seed: seed of initialisation, sampling and batch order
      device: "cpu", "cuda", "cuda:N" or "auto" (cuda when available)
      dtype: "float32" or "float64" of the model and the data
      threads: torch threads of the run (None: torch's default); 1 avoids oversubscribing small shared machines
      validate_every: epochs between validations (the last epoch is always validated)
    """

    name: ClassVar[str] = "train"
    epochs: int = 10
    batch_size: int = 100
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    critic_lr: float | None = None
    weight_decay: float = 0.0
    lr_decay: float = 1.0
    decay_every: int = 1
    seed: int = 0
    device: str = "cpu"
    dtype: Literal["float32", "float64"] = "float32"
    threads: int | None = None
    validate_every: int = 1

    def __post_init__(self) -> None:
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "decay_every": self.decay_every,
            "validate_every": self.validate_every,
            "threads": 1 if self.threads is None else self.threads,
        }
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"train.{key} must be a positive integer, got {value}")
        if self.batch_size < 2:
            raise ConfigError(f"train.batch_size must be at least 2 (estimators need pairs), got {self.batch_size}")
        for key, rate in (("lr", self.lr), ("critic_lr", self.critic_lr)):
            if rate is not None and not rate > 0:
                raise ConfigError(f"train.{key} must be positive, got {rate}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"train.lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.weight_decay < 0:
            raise ConfigError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise ConfigError(f"train.device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}")

    def lr_at(self, epoch: int, base: float) -> float:
        """The learning rate in ``epoch`` (0-based) for the initial rate ``base``."""
        return base * self.lr_decay ** (epoch // self.decay_every)


@dataclasses.dataclass(frozen=True)
class Selection:
    """A block selecting a registered thing: its ``name`` and raw ``options``."""

    name: str
    options: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Config:
    """A run configuration as written, before names are looked up (see :func:`resolve`)."""

    task: Selection
    data: Selection
    estimator: Selection | None
    model: dict[str, Any]
    train: dict[str, Any]
    eval: dict[str, Any]
    source: str = "<config>"

    def to_dict(self) -> dict[str, Any]:
        """The configuration as TOML-like plain data (what ``results.json`` and checkpoints record)."""
        blocks: dict[str, Any] = {
            "task": dataclasses.asdict(self.task),
            "data": dataclasses.asdict(self.data),
            "model": dict(self.model),
            "train": dict(self.train),
            "eval": dict(self.eval),
        }
        if self.estimator is not None:
            blocks["estimator"] = dataclasses.asdict(self.estimator)
        return blocks

    def with_train(self, **overrides: Any) -> Config:
        """A copy with ``[train]`` keys replaced (the command line's ``--seed`` and ``--device``)."""
        return dataclasses.replace(self, train={**self.train, **overrides})


def _suggest(key: str, known: tuple[str, ...] | list[str]) -> str:
    return did_you_mean(key, known)


def _table(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path} must be a table, got {type(value).__name__} {value!r}")
    return dict(value)


def _selection(block: dict[str, Any], path: str) -> Selection:
    for key in block:
        if key not in ("name", "options"):
            hint = _suggest(key, ["name", "options"])
            raise ConfigError(f"{path}.{key}: unknown key; a [{path}] block holds `name` and an `options` table.{hint}")
    name = block.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}.name: missing or not a string (got {name!r})")
    return Selection(name, _table(block.get("options", {}), f"{path}.options"))


def parse_config(raw: Mapping[str, Any], source: str = "<config>") -> Config:
    """Check the shape of a parsed TOML document and return its :class:`Config`."""
    for key in raw:
        if key not in BLOCKS:
            raise ConfigError(f"{source}: {key}: unknown block.{_suggest(key, BLOCKS)} Blocks: {', '.join(BLOCKS)}")
    for key in _REQUIRED:
        if key not in raw:
            raise ConfigError(f"{source}: {key}: missing block [{key}] (with `name` and `options`)")
    try:
        blocks = {key: _table(raw.get(key, {}), key) for key in BLOCKS}
        return Config(
            task=_selection(blocks["task"], "task"),
            data=_selection(blocks["data"], "data"),
            estimator=_selection(blocks["estimator"], "estimator") if "estimator" in raw else None,
            model=blocks["model"],
            train=blocks["train"],
            eval=blocks["eval"],
            source=source,
        )
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def load_config(path: str | Path) -> Config:
    """Read and shape-check the TOML file at ``path``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config {str(file)!r}: {error.strerror or error}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{file}: not valid TOML: {error}") from None
    return parse_config(raw, source=str(file))


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A configuration with every name looked up and every option validated (nothing trained)."""

    config: Config
    task_cls: type[Task]
    task: Any
    dataset: Any
    model: Any
    eval: Any
    train: TrainSettings
    estimator_cls: type | None


def _at(source: str, where: str, error: Exception) -> ConfigError:
    """``error`` as a :class:`ConfigError` prefixed by the file and, unless it names it, the key path."""
    text = str(error)
    named = where in text or text.startswith(where.split(".")[0])
    return ConfigError(f"{source}: {text}" if named else f"{source}: {where}: {text}")


def resolve(config: Config) -> Resolved:
    """Look up the task, dataset and estimator by name and validate all options.

    The estimator is built once here (and dropped) so that its own checks run too; datasets
    check their files (:meth:`~mireg.data.Dataset.check`). Raises :class:`ConfigError`.
    """
    from mireg.data import dataset
    from mireg.registry import default_registry

    registry = default_registry()
    source = config.source

    def build(where: str, make: Any) -> Any:
        try:
            return make()
        except (MiregError, ValueError, TypeError) as error:
            raise _at(source, where, error) from None

    task_info = build("task.name", lambda: registry.get("task", config.task.name))
    task_cls = task_info.cls
    task = build(
        "task.options", lambda: registry.create("task", config.task.name, config.task.options, where="task.options.")
    )
    model = build("model", lambda: task_cls.Model(**validate_options(task_cls.Model, config.model, where="model.")))
    evaluation = build("eval", lambda: task_cls.Eval(**validate_options(task_cls.Eval, config.eval, where="eval.")))
    train = build("train", lambda: TrainSettings(**validate_options(TrainSettings, config.train, where="train.")))
    data = build("data.name", lambda: dataset(config.data.name, config.data.options))
    build("data.options", data.check)
    estimator_cls = None
    if config.estimator is not None:
        selection = config.estimator
        estimator_cls = build("estimator.name", lambda: registry.get("mi_gradient", selection.name)).cls
        build(
            "estimator.options",
            lambda: registry.create("mi_gradient", selection.name, selection.options, where="estimator.options."),
        )
    if task.uses_estimator() and config.estimator is None:
        raise ConfigError(f"{source}: estimator: task {task_cls.name!r} with these options needs an [estimator] block")
    if not task.uses_estimator() and config.estimator is not None:
        raise ConfigError(
            f"{source}: estimator: task {task_cls.name!r} with these options uses no estimator; remove [estimator]"
        )
    return Resolved(config, task_cls, task, data, model, evaluation, train, estimator_cls)
