"""Option specs and validation: names, types, defaults, messages."""

from __future__ import annotations

from typing import Literal

import pytest

from mireg import OptionError
from mireg.options import option_specs, validate_options


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
