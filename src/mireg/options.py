"""Estimator options: read from a class's keyword-only ``__init__`` parameters, validated on every path.

An estimator declares its options as keyword-only parameters with a type hint and a default;
choices are ``Literal`` types and ranges :class:`Range` constraints in ``Annotated``::

    def __init__(self, *, threshold: Annotated[float, Range(0, 1, low_open=True)] = 0.99,
                 solver: Literal["eigh", "subspace"] = "eigh") -> None:
        check_options(MyEstimator, locals())   # direct construction is checked like a config
        ...

An ``__init__`` that ends in ``**options`` passes them on to its base class and inherits the
base's options (and their docs). Options are documented in an ``Options:`` section of the class
docstring (``name: text`` lines), read along the MRO so a base documents its options once.
:func:`validate_options` checks names, types, choices and ranges before an estimator is built
(the registry and config path), :func:`check_options` the values a constructor received.
"""

from __future__ import annotations

import functools
import inspect
import math
import operator
import re
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

import attrs

from mireg.errors import OptionError
from mireg.text import did_you_mean

_MISSING = inspect.Parameter.empty


@attrs.frozen
class Range:
    """The interval an option's value must lie in (``Annotated[float, Range(0, 1)]``); ``None`` is unbounded.

    ``None`` values of an optional option are not checked.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def describe(self, annotation: Any = float) -> str:
        """``"in (0, 1]"``, ``">= 0"``, or ``"a positive integer"`` for ints at least 1."""
        if self.high is None and self.low is not None:
            if annotation is int and self.low == 1 and not self.low_open:
                return "a positive integer"
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None and self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


#: A whole number >= 1 (widths, counts, sizes), as option annotations use it.
PositiveInt = Annotated[int, Range(1)]


@attrs.frozen
class OptionSpec:
    """One option of an estimator: its name, type hint (constraints split off), default, one-line
    description and the :class:`Range` constraints declared with ``Annotated``."""

    name: str
    annotation: Any
    default: Any
    doc: str = ""
    ranges: tuple[Range, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    @property
    def type_name(self) -> str:
        return _type_name(self.annotation)

    def describe(self) -> str:
        """``name: type = default`` as shown in error messages and ``mireg show``."""
        default = "required" if self.required else repr(self.default)
        return f"{self.name}: {self.type_name} = {default}"


def _type_name(annotation: Any) -> str:
    if annotation is _MISSING:
        return "any"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _docstring_options(cls: type) -> dict[str, str]:
    """``name: text`` lines of the ``Options:`` sections of the class docstrings along the MRO
    (a subclass's line overrides its base's)."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        found.update(_options_section(inspect.cleandoc(klass.__dict__.get("__doc__") or "")))
    return found


def _options_section(doc: str) -> dict[str, str]:
    found: dict[str, str] = {}
    in_section = False
    for line in doc.splitlines():
        if line.strip() == "Options:":
            in_section = True
            continue
        if in_section:
            if line and not line.startswith(" "):
                break
            match = re.match(r"^\s{2,}(\w+)\s*:\s*(.*)$", line)
            if match:
                found[match.group(1)] = match.group(2).strip()
    return found


def _split_constraints(hint: Any) -> tuple[Any, tuple[Range, ...]]:
    """The type of ``hint`` without ``Annotated`` (also inside ``X | None``) and its :class:`Range` constraints."""
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        return base, tuple(extra for extra in extras if isinstance(extra, Range))
    if typing.get_origin(hint) in (Union, types.UnionType):
        parts = [_split_constraints(arg) for arg in typing.get_args(hint)]
        if any(ranges for _, ranges in parts):
            union = functools.reduce(operator.or_, (base for base, _ in parts))
            return union, tuple(r for _, ranges in parts for r in ranges)
    return hint, ()


_SPECS: dict[type, Mapping[str, OptionSpec]] = {}


def option_specs(cls: type) -> Mapping[str, OptionSpec]:
    """The options of an estimator class, in order: its keyword-only ``__init__`` parameters, and,
    where an ``__init__`` takes ``**options``, those of the next ``__init__`` along the MRO (cached;
    read-only)."""
    if cls not in _SPECS:
        _SPECS[cls] = _read_specs(cls)
    return _SPECS[cls]


def _read_specs(cls: type) -> Mapping[str, OptionSpec]:
    docs = _docstring_options(cls)
    specs: dict[str, OptionSpec] = {}
    for klass in cls.__mro__:
        constructor = klass.__dict__.get("__init__")
        if constructor is None:
            continue
        parameters = inspect.signature(constructor).parameters
        try:
            hints = typing.get_type_hints(constructor, include_extras=True)
        except Exception:  # an unresolvable forward reference: fall back to no type checks
            hints = {}
        for name, parameter in parameters.items():
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in specs:
                annotation, ranges = _split_constraints(hints.get(name, _MISSING))
                specs[name] = OptionSpec(name, annotation, parameter.default, docs.get(name, ""), ranges)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            break
    return types.MappingProxyType(specs)


def _matches(value: Any, annotation: Any) -> bool:
    """Whether ``value`` fits ``annotation`` (plain types, unions, Optional, Literal, tuples)."""
    if annotation is _MISSING or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(annotation))
    if origin is Literal:
        return value in typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if annotation is float:  # NaN and ±inf are never meaningful option values
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, list, typing.Sequence) or annotation in (tuple, list):
        return isinstance(value, (tuple, list))
    if origin in (dict, Mapping) or annotation is dict:
        return isinstance(value, Mapping)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True  # a hint we do not interpret (a Protocol, a callable): the estimator checks it


def _listing(specs: Mapping[str, OptionSpec]) -> str:
    if not specs:
        return "it takes no options"
    return "valid options: " + "; ".join(spec.describe() for spec in specs.values())


def _check(spec: OptionSpec, value: Any, label: str, where: str, specs: Mapping[str, OptionSpec]) -> Any:
    """``value`` (floats normalised) if it fits ``spec``'s type, choices and ranges; else :class:`OptionError`."""
    if not _matches(value, spec.annotation):
        raise OptionError(
            f"option {where}{spec.name} of {label!r} must be {spec.type_name}, "
            f"got {value!r} ({type(value).__name__}). {_listing(specs)}"
        )
    for bounds in spec.ranges:
        if value is not None and not bounds.contains(value):
            optional = " or None" if _matches(None, spec.annotation) else ""
            raise OptionError(
                f"{where}{spec.name} must be {bounds.describe(_plain(spec.annotation))}{optional} "
                f"for {label!r}, got {value!r}"
            )
    return float(value) if spec.annotation is float else value


def _plain(annotation: Any) -> Any:
    """``int`` for ``int`` and ``int | None``; otherwise the annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if len(args) == 1 else annotation


def validate_options(cls: type, options: Mapping[str, Any], *, where: str = "") -> dict[str, Any]:
    """Check ``options`` against the options of ``cls``; return them with floats normalised.

    Raises :class:`~mireg.errors.OptionError` naming the bad option (prefixed by ``where``,
    e.g. ``estimator.options.``), a did-you-mean suggestion and the valid options with defaults.
    """
    specs = option_specs(cls)
    label = getattr(cls, "name", cls.__name__)
    checked: dict[str, Any] = {}
    for key, value in options.items():
        spec = specs.get(key)
        if spec is None:
            hint = did_you_mean(key, specs)
            raise OptionError(f"unknown option {where}{key} for {label!r}.{hint} {_listing(specs)}")
        checked[key] = _check(spec, value, label, where, specs)
    missing = [spec.name for spec in specs.values() if spec.required and spec.name not in options]
    if missing:
        raise OptionError(f"missing required option(s) {missing} for {label!r}. {_listing(specs)}")
    return checked


def check_options(cls: type, values: Mapping[str, Any]) -> None:
    """Check the option values a constructor of ``cls`` received (call it with ``locals()`` first
    thing in ``__init__``): types, ``Literal`` choices and :class:`Range` constraints, so direct
    construction fails exactly as a config does. Keys that are not options of ``cls`` are ignored;
    messages name the class of ``values["self"]`` (the estimator being built) when there is one."""
    specs = option_specs(cls)
    owner = type(values["self"]) if "self" in values else cls
    label = getattr(owner, "name", owner.__name__)
    for key, spec in specs.items():
        if key in values:
            _check(spec, values[key], label, "", specs)


def check_record(record: attrs.AttrsInstance) -> None:
    """Check the fields of an attrs options record (a config block such as ``[train]``) as
    :func:`check_options` checks a constructor's arguments; call it first thing in ``__attrs_post_init__``."""
    check_options(type(record), attrs.asdict(record, recurse=False))
