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

import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import attrs
import torch
from torch import nn

from mireg.data import Dataset, dataset_class
from mireg.errors import ConfigError, MiregError, UnknownEstimatorError
from mireg.estimators import MIGradientEstimator
from mireg.options import Range, check_record, option_specs, validate_options
from mireg.registry import Registry, default_registry
from mireg.tasks.base import Task
from mireg.text import did_you_mean

BLOCKS = ("task", "data", "model", "estimator", "train", "eval")
#: The seeds every RNG accepts: torch takes 64 bits (negative seeds wrap), numpy takes seed mod 2**32.
SEED_RANGE = (-(2**63), 2**63 - 1)
_DEVICE = re.compile(r"cpu|auto|cuda(:\d+)?")
_REQUIRED = ("task", "data")
_T = TypeVar("_T")


@attrs.frozen(kw_only=True)
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
    epochs: Annotated[int, Range(1)] = 10
    batch_size: Annotated[int, Range(2)] = 100  # estimators need pairs
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: Annotated[float, Range(0, low_open=True)] = 1e-3
    critic_lr: Annotated[float | None, Range(0, low_open=True)] = None
    weight_decay: Annotated[float, Range(0)] = 0.0
    lr_decay: Annotated[float, Range(0, 1, low_open=True)] = 1.0
    decay_every: Annotated[int, Range(1)] = 1
    seed: int = 0
    device: str = "cpu"
    dtype: Literal["float32", "float64"] = "float32"
    threads: Annotated[int | None, Range(1)] = None
    validate_every: Annotated[int, Range(1)] = 1

    def __attrs_post_init__(self) -> None:
        """Checks beyond the declared types and ranges; messages start with the option's name."""
        check_record(self)
        if not _DEVICE.fullmatch(self.device):
            raise ConfigError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}")
        low, high = SEED_RANGE
        if not low <= self.seed <= high:
            raise ConfigError(
                f"seed must be a signed 64-bit integer, in [-2**63, 2**63 - 1] = [{low}, {high}], got {self.seed}"
            )

    def lr_at(self, epoch: int, base: float) -> float:
        """The learning rate in ``epoch`` (0-based) for the initial rate ``base``."""
        return base * self.lr_decay ** (epoch // self.decay_every)


@attrs.frozen
class Selection:
    """A block selecting a registered thing: its ``name`` and raw ``options``."""

    name: str
    options: dict[str, Any]


@attrs.frozen
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
            "task": attrs.asdict(self.task),
            "data": attrs.asdict(self.data),
            "model": dict(self.model),
            "train": dict(self.train),
            "eval": dict(self.eval),
        }
        if self.estimator is not None:
            blocks["estimator"] = attrs.asdict(self.estimator)
        return blocks

    def with_train(self, **overrides: Any) -> Config:
        """A copy with ``[train]`` keys replaced (the command line's ``--seed`` and ``--device``)."""
        return attrs.evolve(self, train={**self.train, **overrides})


def _table(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path} must be a table, got {type(value).__name__} {value!r}")
    return dict(value)


def _selection(block: dict[str, Any], path: str) -> Selection:
    for key in block:
        if key not in ("name", "options"):
            hint = did_you_mean(key, ["name", "options"])
            raise ConfigError(f"{path}.{key}: unknown key; a [{path}] block holds `name` and an `options` table.{hint}")
    name = block.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}.name: missing or not a string (got {name!r})")
    return Selection(name, _table(block.get("options", {}), f"{path}.options"))


def parse_config(raw: Mapping[str, Any], source: str = "<config>") -> Config:
    """Check the shape of a parsed TOML document and return its :class:`Config`."""
    for key in raw:
        if key not in BLOCKS:
            raise ConfigError(f"{source}: {key}: unknown block.{did_you_mean(key, BLOCKS)} Blocks: {', '.join(BLOCKS)}")
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


@attrs.frozen
class EstimatorRecipe:
    """What builds the run's MI-gradient estimator: the registered class, the ``name`` it was selected
    by (a qualified ``plugin/name`` stays unambiguous when two plugins register the short name), its
    raw ``options`` and the registry that resolves them (nested names such as MIGE's ``score`` included)."""

    cls: type[MIGradientEstimator]
    name: str
    options: Mapping[str, Any]
    registry: Registry

    def build(self) -> MIGradientEstimator:
        """A fresh estimator (its parameters drawn from the global RNG, so seed first)."""
        estimator: MIGradientEstimator = self.registry.create(
            "mi_gradient", self.name, self.options, where="estimator.options."
        )
        return estimator


@attrs.frozen
class Resolved:
    """A configuration with every name looked up and every option validated (nothing trained):
    what :class:`~mireg.training.Trainer` runs."""

    config: Config
    task: Task[nn.Module, attrs.AttrsInstance, attrs.AttrsInstance]
    dataset: Dataset
    model: attrs.AttrsInstance
    eval: attrs.AttrsInstance
    train: TrainSettings
    estimator: EstimatorRecipe | None

    def to_dict(self) -> dict[str, Any]:
        """The configuration with every default filled in and names in their registered spelling:
        two configs that run the same thing give the same dict (what a resume compares)."""
        task_cls = type(self.task)
        blocks: dict[str, Any] = {
            "task": {"name": task_cls.name, "options": _filled(task_cls, self.config.task.options)},
            "data": {"name": self.dataset.name, "options": _filled(type(self.dataset), self.config.data.options)},
            "model": attrs.asdict(self.model, recurse=False),
            "train": attrs.asdict(self.train, recurse=False),
            "eval": attrs.asdict(self.eval, recurse=False),
        }
        if self.estimator is not None:
            options = _filled(self.estimator.cls, self.estimator.options)
            blocks["estimator"] = {"name": self.estimator.cls.name, "options": options}
        plain: dict[str, Any] = _plain(blocks)
        return plain

    def batch_limits(self) -> dict[str, Any]:
        """The estimator keywords of :func:`check_batch_size` for this run (its minimum batch depends on them)."""
        if self.estimator is None:
            return {}
        return {"estimator_cls": self.estimator.cls, "estimator_options": self.estimator.options}


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


def _built(source: str, where: str, make: Callable[[], _T]) -> _T:
    """``make()``, its error a :class:`ConfigError` prefixed by the file ``source`` and the key path
    ``where`` (the builder's own message starts with what is wrong inside that key)."""
    try:
        return make()
    except (MiregError, ValueError, TypeError) as error:
        raise ConfigError(f"{source}: {where}{error}") from None


def _record(cls: type[_T], raw: Mapping[str, Any], block: str, source: str) -> _T:
    """The options record ``cls`` of ``[block]``: keys, types and ranges checked by
    :func:`validate_options` (which names the key), the record's own checks prefixed with ``block.``."""
    checked = _built(source, "", lambda: validate_options(cls, raw, where=f"{block}."))
    return _built(source, f"{block}.", lambda: cls(**checked))


def _check_estimator(recipe: EstimatorRecipe, source: str) -> None:
    """Build the estimator once so its constructor's checks run; a nested name the registry does not
    know (MIGE's ``score``) is reported under ``estimator.options``, which its error does not name."""
    try:
        recipe.build()
    except UnknownEstimatorError as error:
        raise ConfigError(f"{source}: estimator.options: {error}") from None
    except (MiregError, ValueError, TypeError) as error:
        raise ConfigError(f"{source}: {error}") from None


def resolve(config: Config, registry: Registry | None = None) -> Resolved:
    """Look up the task, dataset and estimator by name in ``registry`` (default: the process-wide
    one) and validate all options. Raises :class:`ConfigError` naming the file and the key.

    The estimator is built once here so that its constructor's checks run too, and dropped: the
    trainer builds its own from :attr:`Resolved.estimator` after seeding. Datasets check their
    files (:meth:`~mireg.data.Dataset.check`).
    """
    registry = registry or default_registry()
    source = config.source
    task_cls = _built(source, "task.name: ", lambda: registry.get("task", config.task.name)).cls
    task = _built(
        source, "", lambda: registry.create("task", config.task.name, config.task.options, where="task.options.")
    )
    model = _record(task_cls.model_options, config.model, "model", source)
    evaluation = _record(task_cls.eval_options, config.eval, "eval", source)
    train = _record(TrainSettings, config.train, "train", source)
    _built(source, "", lambda: resolve_device(train.device))
    data_cls = _built(source, "", lambda: dataset_class(config.data.name))
    data = _record(data_cls, config.data.options, "data.options", source)
    _built(source, "", data.check)  # its messages name the option whose files are missing
    recipe = None
    if config.estimator is not None:
        selection = config.estimator
        cls = _built(source, "estimator.name: ", lambda: registry.get("mi_gradient", selection.name)).cls
        recipe = EstimatorRecipe(cls, selection.name, selection.options, registry)
        _check_estimator(recipe, source)
    if task.uses_estimator() and config.estimator is None:
        raise ConfigError(f"{source}: estimator: task {task_cls.name!r} with these options needs an [estimator] block")
    if not task.uses_estimator() and config.estimator is not None:
        raise ConfigError(
            f"{source}: estimator: task {task_cls.name!r} with these options uses no estimator; remove [estimator]"
        )
    return Resolved(config, task, data, model, evaluation, train, recipe)
