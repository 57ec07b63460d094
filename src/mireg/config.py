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
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from mireg.errors import ConfigError, MiregError
from mireg.options import option_specs, validate_options
from mireg.text import did_you_mean

if TYPE_CHECKING:
    import torch

    from mireg.estimators import MIGradientEstimator
    from mireg.tasks import Task

BLOCKS = ("task", "data", "model", "estimator", "train", "eval")
#: The seeds every RNG accepts: torch takes 64 bits (negative seeds wrap), numpy takes seed mod 2**32.
SEED_RANGE = (-(2**63), 2**63 - 1)
_DEVICE = re.compile(r"cpu|auto|cuda(:\d+)?")
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
      seed: seed of initialisation, sampling and batch order, a signed 64-bit integer
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
        if not _DEVICE.fullmatch(self.device):
            raise ConfigError(f"train.device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}")
        low, high = SEED_RANGE
        if not low <= self.seed <= high:
            raise ConfigError(
                f"train.seed must be a signed 64-bit integer, in [-2**63, 2**63 - 1] = [{low}, {high}], got {self.seed}"
            )

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
    """Read and shape-check the TOML file at ``path`` (UTF-8, with or without a byte-order mark)."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read config {str(file)!r}: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8-sig")  # TOML is UTF-8; some editors prepend a byte-order mark
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"{file}: not UTF-8 (byte {data[error.start]:#04x} at line {line}); TOML files must be UTF-8: "
            "save the file as UTF-8"
        ) from None
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
    estimator_cls: type[MIGradientEstimator] | None

    def to_dict(self) -> dict[str, Any]:
        """The configuration with every default filled in and names in their registered spelling:
        two configs that run the same thing give the same dict (what a resume compares)."""
        blocks: dict[str, Any] = {
            "task": {"name": self.task_cls.name, "options": _filled(self.task_cls, self.config.task.options)},
            "data": {"name": self.dataset.name, "options": _filled(type(self.dataset), self.config.data.options)},
            "model": _filled(self.task_cls.Model, self.config.model),
            "train": dataclasses.asdict(self.train),
            "eval": _filled(self.task_cls.Eval, self.config.eval),
        }
        if self.estimator_cls is not None and self.config.estimator is not None:
            options = _filled(self.estimator_cls, self.config.estimator.options)
            blocks["estimator"] = {"name": self.estimator_cls.name, "options": options}
        plain: dict[str, Any] = _plain(blocks)
        return plain


def _filled(cls: type, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` validated for ``cls``, with every option it leaves out at its default."""
    defaults = {name: spec.default for name, spec in option_specs(cls).items() if not spec.required}
    return {**defaults, **validate_options(cls, options)}


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists, as TOML and checkpoints hold them."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def resolve_device(name: str) -> torch.device:
    """``train.device`` as a :class:`torch.device` (``auto``: CUDA when available); a CUDA device
    this machine does not have raises :class:`ConfigError`."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {name!r} but CUDA is not available on this machine; use 'cpu' or 'auto'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ConfigError(
            f"train.device = {name!r} but this machine has {count} CUDA device(s): use 'cuda:0' to 'cuda:{count - 1}'"
        )
    return device


def check_batch_size(
    train: TrainSettings,
    rows: int,
    *,
    estimator_cls: type[MIGradientEstimator] | None = None,
    estimator_options: Mapping[str, Any] | None = None,
    world: int = 1,
) -> None:
    """Raise :class:`ConfigError` unless a batch of ``world × train.batch_size`` rows fits in the
    ``rows`` training rows and holds at least the rows the estimator built with ``estimator_options``
    accepts (:meth:`~mireg.MIGradientEstimator.min_batch_size`; 2 without an estimator)."""
    least = 2 if estimator_cls is None else max(2, estimator_cls.min_batch_size(estimator_options))
    batch = train.batch_size * world
    if least <= batch <= rows:
        return
    processes = f" on {world} processes ({batch} rows in all)" if world > 1 else ""
    need = f"the estimator {getattr(estimator_cls, 'name', '')!r} needs " if least > 2 else ""
    if batch > rows:
        reason = f"exceeds the {rows} training rows"
    else:
        reason = f"is too small: {need or 'estimators need '}at least {least} rows per batch"
    raise ConfigError(
        f"train.batch_size = {train.batch_size}{processes} {reason}; "
        f"valid range: {-(-least // world)} <= batch_size <= {rows // world}"
    )


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
    build("train.device", lambda: resolve_device(train.device))
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
