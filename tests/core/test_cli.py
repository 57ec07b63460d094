"""The ``mireg`` command on the process-wide registry."""

from __future__ import annotations

import json

import pytest

from mireg.cli import main


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
