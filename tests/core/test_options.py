"""Option specs and validation: names, types, defaults, messages."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest

from mireg import OptionError
from mireg.options import Range, check_options, option_specs, validate_options


class Example:
    """An example.

    Options:
      threshold: cumulative eigenvalue share
      n_eigen: fixed count
    """

    name = "example"

    def __init__(
        self,
        *,
        threshold: float = 0.99,
        n_eigen: int | None = None,
        kernel: Literal["rbf", "imq"] = "rbf",
        widths: tuple[int, ...] = (64,),
        seed: int,
    ) -> None:
        pass


def test_specs_read_keyword_only_parameters_with_docs() -> None:
    specs = option_specs(Example)
    assert list(specs) == ["threshold", "n_eigen", "kernel", "widths", "seed"]
    assert specs["threshold"].default == 0.99
    assert specs["threshold"].doc == "cumulative eigenvalue share"
    assert specs["seed"].required
    assert specs["n_eigen"].describe() == "n_eigen: int | None = None"


def test_valid_options_pass_and_ints_become_floats() -> None:
    checked = validate_options(Example, {"threshold": 1, "n_eigen": None, "kernel": "imq", "widths": [8, 8], "seed": 3})
    assert checked["threshold"] == 1.0 and isinstance(checked["threshold"], float)
    assert checked["kernel"] == "imq"


def test_unknown_option_suggests_and_lists_valid_options() -> None:
    with pytest.raises(OptionError) as info:
        validate_options(Example, {"treshold": 0.9, "seed": 0}, where="estimator.options.")
    message = str(info.value)
    assert "estimator.options.treshold" in message
    assert "Did you mean 'threshold'?" in message
    assert "threshold: float = 0.99" in message and "n_eigen: int | None = None" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("threshold", "high"),
        ("threshold", True),
        ("threshold", float("nan")),
        ("threshold", float("inf")),
        ("n_eigen", 2.5),
        ("kernel", "gauss"),
        ("widths", 3),
    ],
)
def test_ill_typed_option_names_the_expected_type(key: str, value: object) -> None:
    with pytest.raises(OptionError, match=f"option {key} of 'example' must be"):
        validate_options(Example, {key: value, "seed": 0})


def test_missing_required_option() -> None:
    with pytest.raises(OptionError, match=r"missing required option\(s\) \['seed'\]"):
        validate_options(Example, {})


class Base:
    """A base that declares and documents two options.

    Options:
      width: a positive width
      share: a fraction in (0, 1]
    """

    def __init__(
        self,
        *,
        width: Annotated[int, Range(1)] | None = None,
        share: Annotated[float, Range(0, 1, low_open=True)] = 0.5,
    ) -> None:
        check_options(Base, locals())


class Derived(Base):
    """Adds one option and passes the rest on.

    Options:
      mode: a choice
    """

    name = "derived"

    def __init__(self, *, mode: Literal["a", "b"] = "a", **options: object) -> None:
        check_options(Derived, locals())
        super().__init__(**options)  # type: ignore[arg-type]


def test_options_and_docs_are_inherited_through_keyword_pass_through() -> None:
    specs = option_specs(Derived)
    assert list(specs) == ["mode", "width", "share"]
    assert specs["width"].doc == "a positive width" and specs["mode"].doc == "a choice"
    assert specs["width"].describe() == "width: int | None = None"  # the constraint is not part of the type
    assert option_specs(Derived) is option_specs(Derived)  # cached


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"width": 0}, r"width must be a positive integer or None for 'derived', got 0"),
        ({"share": 0.0}, r"share must be in \(0, 1\] for 'derived', got 0.0"),
        ({"share": 1.5}, r"share must be in \(0, 1\] for 'derived', got 1.5"),
        ({"mode": "c"}, r"option mode of 'derived' must be Literal\['a', 'b'\]"),
    ],
)
def test_constraints_hold_on_the_registry_path_and_on_direct_construction(options: dict, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        validate_options(Derived, options)
    with pytest.raises(OptionError, match=message):
        Derived(**options)


def test_values_inside_the_range_pass_on_both_paths() -> None:
    assert validate_options(Derived, {"width": 1, "share": 1, "mode": "b"}) == {"width": 1, "share": 1.0, "mode": "b"}
    Derived(width=None, share=1e-9)


def test_range_descriptions() -> None:
    assert Range(0).describe() == ">= 0"
    assert Range(0, low_open=True).describe() == "> 0"
    assert Range(1).describe(int) == "a positive integer"
    assert Range(0, 1, high_open=True).describe() == "in [0, 1)"
    assert Range(0, 1, high_open=True).contains(0.0) and not Range(0, 1, high_open=True).contains(1.0)
