"""Estimator options: read from a class's keyword-only ``__init__`` parameters, validated early.

An estimator declares its options as keyword-only parameters with a type hint and a default::

    def __init__(self, *, threshold: float = 0.99, n_eigen: int | None = None) -> None: ...

and documents them in an ``Options:`` section of its class docstring (``name: text`` lines).
:func:`validate_options` checks names and types before the estimator is built, so a typo in a
config fails at load time with the list of valid options, not at the first training step.
"""

from __future__ import annotations

import inspect
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

import attrs

from mireg.errors import OptionError
from mireg.text import did_you_mean

_MISSING = inspect.Parameter.empty


@attrs.frozen
class OptionSpec:
    """One option of an estimator: its name, type hint, default and one-line description."""

    name: str
    annotation: Any
    default: Any
    doc: str = ""

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
    """``name: text`` lines of the ``Options:`` section of the class docstring."""
    doc = inspect.getdoc(cls) or ""
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


def option_specs(cls: type) -> dict[str, OptionSpec]:
    """The options of an estimator class: its keyword-only ``__init__`` parameters, in order."""
    constructor = cls.__init__  # type: ignore[misc]
    signature = inspect.signature(constructor)
    try:
        hints = typing.get_type_hints(constructor)
    except Exception:  # an unresolvable forward reference: fall back to no type checks
        hints = {}
    docs = _docstring_options(cls)
    return {
        name: OptionSpec(name, hints.get(name, _MISSING), parameter.default, docs.get(name, ""))
        for name, parameter in signature.parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }


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
            raise OptionError(
                f"unknown option {where}{key} for {label!r}.{hint} {_listing(specs)}"
            )
        if not _matches(value, spec.annotation):
            raise OptionError(
                f"option {where}{key} of {label!r} must be {spec.type_name}, "
                f"got {value!r} ({type(value).__name__}). {_listing(specs)}"
            )
        checked[key] = float(value) if spec.annotation is float else value
    missing = [spec.name for spec in specs.values() if spec.required and spec.name not in options]
    if missing:
        raise OptionError(f"missing required option(s) {missing} for {label!r}. {_listing(specs)}")
    return checked
