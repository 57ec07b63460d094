"""The ``mireg`` command on the process-wide registry."""

from __future__ import annotations

import json

import pytest
from conftest import GaussianScore, score_plugin

import mireg.cli
from mireg.cli import main
from mireg.registry import Registry


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json_has_the_record_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "--json")
    records = json.loads(out)
    assert code == 0
    mige = next(r for r in records if r["name"] == "mige")
    assert mige == {**mige, "kind": "mi_gradient", "plugin": "mireg"}
    assert set(mige) == {"name", "kind", "plugin", "version", "summary", "aliases"}


def test_list_filters_by_kind(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "--kind", "mi_gradient")
    assert code == 0 and "mige" in out
    assert all(" mi_gradient " in line for line in out.strip().splitlines())


def test_plugins_json_reports_the_builtin(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plugins", "--json")
    records = {r["distribution"]: r for r in json.loads(out)}
    assert code == 0
    assert records["mireg"]["status"] == "ok" and "mige" in records["mireg"]["estimators"]
    assert set(records["mireg"]) == {"distribution", "version", "status", "error", "estimators"}


def test_show_lists_options_and_references(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "mige")
    assert code == 0
    assert "precondition: Literal['auto', 'full', 'diag', 'none'] = 'auto'" in out
    assert "reference: Wen et al." in out


def test_show_unknown_name_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "show", "migee", "--kind", "mi_gradient")
    assert code == 2 and "Did you mean 'mige'" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("mireg ")


def test_show_searches_every_kind_with_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "show", "migee")  # the core alone: mige and the tasks are registered
    assert code == 2 and "Did you mean 'mige'" in err
    assert "score estimators or MI-gradient estimators or tasks" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run(capsys, "show", "mige")
    assert code == 0 and out.startswith("mige  (mi_gradient, ")


def test_show_describes_a_task_with_its_model_and_eval_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "ib")
    assert code == 0 and out.startswith("ib  (task, from mireg ")
    assert "  options:" in out and "    method: " in out
    assert "  [model] options:" in out and "    z_dim: int = " in out and "  [eval] options:" in out


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_show_reports_a_duplicate_name_with_both_qualified_names(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, order: tuple[str, str]
) -> None:
    class Other(GaussianScore):
        """Another gauss."""

    classes = {"a": GaussianScore, "b": Other}
    registry = Registry()
    for key in order:  # the output is in plugin order whatever the registration order
        registry.register_plugin(score_plugin(classes[key]), distribution=f"mireg-{key}")
    monkeypatch.setattr(mireg.cli, "default_registry", lambda: registry)
    code, out, _ = run(capsys, "show", "gauss")
    assert code == 0
    assert out.splitlines()[0] == (
        "'gauss' is ambiguous: several plugins register the score estimator 'mireg-a/gauss', 'mireg-b/gauss'; "
        "a configuration must use one of these qualified names"
    )
    titles = [line for line in out.splitlines() if not line.startswith(" ")][1:]
    assert titles == ["mireg-a/gauss  (score, from mireg-a 0)", "mireg-b/gauss  (score, from mireg-b 0)"]
    code, out, _ = run(capsys, "show", "mireg-b/gauss")
    assert code == 0 and out.startswith("gauss  (score, from mireg-b ") and "Another gauss." in out


def test_argument_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "x.toml", "--seed", "abc"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1 and "--seed" in err
