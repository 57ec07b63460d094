"""Registry: registration through hooks, lookup, suggestions, duplicates, broken plugins."""

from __future__ import annotations

import subprocess
import sys
import warnings
from typing import ClassVar

import pytest
from conftest import GaussianScore, ZeroMI, make_plugin, score_plugin

import mireg
from mireg.errors import AmbiguousEstimatorError, OptionError, PluginError, UnknownEstimatorError
from mireg.mige import MIGE
from mireg.registry import DEFAULT_PLUGINS, MiregPluginWarning, Registry


def mi_plugin(*classes: type) -> object:
    @mireg.hookimpl
    def register_mi_gradient_estimators(register):  # type: ignore[no-untyped-def]
        for cls in classes:
            register(cls)

    return make_plugin("mi_plugin", register_mi_gradient_estimators=register_mi_gradient_estimators)


def test_register_and_create_with_options(registry: Registry) -> None:
    info = registry.register_plugin(score_plugin(GaussianScore), distribution="mireg-gauss", version="1.2")
    assert info.status == "ok" and info.estimators == ("gauss",)
    record = registry.get("score", "gauss")
    assert (record.name, record.kind, record.plugin, record.version) == ("gauss", "score", "mireg-gauss", "1.2")
    assert record.summary.startswith("Score of a Gaussian fitted to the batch")
    estimator = registry.create("score", "GAUSS", {"ridge": 1e-3})
    assert isinstance(estimator, GaussianScore) and estimator.ridge == 1e-3


def test_aliases_and_name_normalisation(registry: Registry) -> None:
    registry.register_plugin(mi_plugin(ZeroMI), distribution="mireg-zero")
    assert registry.get("mi_gradient", "nothing").cls is ZeroMI
    assert [r.name for r in registry.list("mi_gradient")] == ["zero"]
    assert registry.list("mi_gradient")[0].aliases == ("nothing",)


def test_unknown_name_suggests_close_names(registry: Registry) -> None:
    registry.register_plugin(score_plugin(GaussianScore), distribution="mireg-gauss")
    with pytest.raises(UnknownEstimatorError) as info:
        registry.get("score", "gaus")
    assert isinstance(info.value, KeyError)
    assert "Did you mean 'gauss'?" in str(info.value)


def test_unknown_name_of_the_other_kind_gets_a_hint(registry: Registry) -> None:
    registry.register_plugin(mi_plugin(ZeroMI), distribution="mireg-zero")
    with pytest.raises(UnknownEstimatorError, match="'zero' is a MI-gradient estimator, not a score estimator"):
        registry.get("score", "zero")


def test_empty_registry_says_how_to_install(registry: Registry) -> None:
    with pytest.raises(UnknownEstimatorError, match=r"Known score estimators: none \(install a plugin"):
        registry.get("score", "ssge")


def test_unknown_and_ill_typed_options_fail_at_build_time(registry: Registry) -> None:
    registry.register_plugin(score_plugin(GaussianScore), distribution="mireg-gauss")
    with pytest.raises(OptionError, match="Did you mean 'ridge'"):
        registry.create("score", "gauss", {"rige": 1.0})
    with pytest.raises(OptionError, match="must be float"):
        registry.create("score", "gauss", {"ridge": "big"})


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_duplicate_names_stay_reachable_and_the_bare_name_is_ambiguous(order: tuple[str, str]) -> None:
    class Other(GaussianScore):
        """Another gauss."""

    classes = {"a": GaussianScore, "b": Other}
    registry = Registry()
    for key in order:
        registry.register_plugin(score_plugin(classes[key]), distribution=f"mireg-{key}")
    assert registry.get("score", "mireg-a/gauss").cls is GaussianScore
    assert registry.get("score", "mireg-b/gauss").cls is Other
    with pytest.raises(AmbiguousEstimatorError) as info:
        registry.get("score", "gauss")
    assert "'mireg-a/gauss'" in str(info.value) and "'mireg-b/gauss'" in str(info.value)


def test_misspelled_hook_fails_loudly(registry: Registry) -> None:
    @mireg.hookimpl
    def register_score_estimator(register):  # type: ignore[no-untyped-def]
        register(GaussianScore)

    plugin = make_plugin("typo", register_score_estimator=register_score_estimator)
    with pytest.raises(PluginError, match="Did you mean 'register_score_estimators'"):
        registry.register_plugin(plugin, distribution="mireg-typo")
    assert registry.list() == []


def test_wrong_hook_arguments_fail_loudly(registry: Registry) -> None:
    @mireg.hookimpl
    def register_score_estimators(registrar):  # type: ignore[no-untyped-def]
        registrar(GaussianScore)

    with pytest.raises(PluginError, match="registrar"):
        registry.register_plugin(
            make_plugin("bad", register_score_estimators=register_score_estimators), distribution="mireg-bad"
        )


def test_broken_plugin_is_isolated_and_reported(registry: Registry) -> None:
    @mireg.hookimpl
    def register_score_estimators(register):  # type: ignore[no-untyped-def]
        register(GaussianScore)
        raise RuntimeError("boom")

    registry.register_plugin(mi_plugin(ZeroMI), distribution="mireg-zero")
    with pytest.warns(MiregPluginWarning, match="mireg-broken 0.3 failed to load"):
        info = registry.register_plugin(
            make_plugin("broken", register_score_estimators=register_score_estimators),
            distribution="mireg-broken",
            version="0.3",
            raise_errors=False,
        )
    assert info.status == "failed" and "RuntimeError: boom" in (info.error or "")
    assert [r.name for r in registry.list()] == ["zero"]  # nothing half-registered survives
    with pytest.raises(UnknownEstimatorError, match="mireg-broken 0.3: RuntimeError: boom"):
        registry.get("score", "gauss")


@pytest.mark.parametrize(
    ("thing", "message"),
    [(int, "subclass of ScoreEstimator"), (ZeroMI, "subclass of ScoreEstimator")],
)
def test_registering_the_wrong_kind_of_class_is_an_error(registry: Registry, thing: type, message: str) -> None:
    with pytest.raises(PluginError, match=message):
        registry.register_plugin(score_plugin(thing), distribution="mireg-wrong")


def test_nameless_class_is_an_error(registry: Registry) -> None:
    class Nameless(GaussianScore):
        name = ""

    with pytest.raises(PluginError, match="needs a class attribute `name`"):
        registry.register_plugin(score_plugin(Nameless), distribution="mireg-nameless")


def test_same_plugin_registering_a_name_twice_is_an_error(registry: Registry) -> None:
    with pytest.raises(PluginError, match="registers the score estimator name 'gauss' twice"):
        registry.register_plugin(score_plugin(GaussianScore, GaussianScore), distribution="mireg-twice")


def test_default_registry_has_the_builtin_mige() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MiregPluginWarning)
        names = {(r.name, r.plugin) for r in mireg.list_estimators("mi_gradient")}
    assert ("mige", "mireg") in names
    with pytest.raises(ValueError, match="kind must be"):
        mireg.list_estimators("scores")


def test_default_plugins_are_module_names_loaded_like_any_plugin(registry: Registry) -> None:
    info = registry.load_modules(DEFAULT_PLUGINS, distribution="mireg", version="0")
    assert info.status == "ok" and set(info.estimators) == {"mige", "ib", "dim"}


def test_nested_score_names_are_resolved_by_the_registry_that_builds(registry: Registry) -> None:
    class Whitened(GaussianScore):
        """A score estimator with its own settings for whitened batches."""

        name = "whitened"
        whitened_options: ClassVar[dict[str, float]] = {"ridge": 0.5}

    registry.load_modules(("mireg.mige",), distribution="mireg", version="0")
    registry.register_plugin(score_plugin(GaussianScore, Whitened), distribution="mireg-local")
    mige = registry.create("mi_gradient", "mige", {"score": "gauss"})  # not in the default registry
    assert type(mige.estimators["z"]) is GaussianScore and mige.score == "gauss"
    assert mige.estimators["z"].ridge == GaussianScore().ridge  # no whitened_options: its own default
    assert registry.create("mi_gradient", "mige", {"score": "whitened"}).estimators["z"].ridge == 0.5
    given = registry.create("mi_gradient", "mige", {"score": "whitened", "score_options": {"ridge": 0.1}})
    assert given.estimators["z"].ridge == 0.1  # given options override the plugin's
    with pytest.raises(UnknownEstimatorError, match="Did you mean 'gauss'"):
        registry.create("mi_gradient", "mige", {"score": "gaus"})
    with pytest.raises(UnknownEstimatorError, match="unknown score estimator 'kef'"):
        registry.create("mi_gradient", "mige")  # the default name, resolved here too
    message = "invalid estimator.options for the MI-gradient estimator 'mige': unknown option score_options.rdge"
    with pytest.raises(OptionError, match=message + " for 'gauss'. Did you mean 'ridge'"):
        registry.create(
            "mi_gradient", "mige", {"score": "gauss", "score_options": {"rdge": 1.0}}, where="estimator.options."
        )


def test_mige_built_directly_takes_a_class_or_instance_and_no_name() -> None:
    assert MIGE(score=GaussianScore, score_options={"ridge": 0.25}).estimators["x"].ridge == 0.25
    with pytest.raises(ValueError, match="names are resolved by a registry"):
        MIGE(score="ssge")


def test_import_mireg_loads_no_training_dependency() -> None:
    code = (
        "import sys, mireg; print(sorted(m for m in ('torchvision', 'sklearn', 'matplotlib', 'mireg.tasks', "
        "'mireg.data', 'mireg.training', 'mireg.registry') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['mireg.registry']"
