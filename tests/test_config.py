"""Config loading and validation: every error names the key path and suggests the right key."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

import mireg
from mireg.cli import main
from mireg.config import load_config, parse_config, resolve
from mireg.errors import ConfigError
from mireg.mige import MIGE
from mireg.registry import DEFAULT_PLUGINS, Registry

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

BASE = """
[task]
name = "ib"
options = { method = "mi", beta = 0.01 }

[data]
name = "synthetic"
options = { train_size = 200 }

[estimator]
name = "mige"
options = { score = "ssge" }

[train]
epochs = 1
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        resolve(load_config(write(tmp_path, text)))
    return str(caught.value)


def test_base_config_resolves(tmp_path: Path) -> None:
    resolved = resolve(load_config(write(tmp_path, BASE)))
    assert resolved.task.method == "mi" and resolved.train.epochs == 1
    assert resolved.config.estimator is not None and resolved.config.estimator.name == "mige"


@pytest.mark.parametrize("name", sorted(path.name for path in CONFIGS.glob("*.toml")))
def test_shipped_configs_pass_check(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(CONFIGS / name)]) == 0
    assert "ok" in capsys.readouterr().out


def test_unknown_estimator_option_names_its_path_and_suggests(tmp_path: Path) -> None:
    text = BASE.replace('options = { score = "ssge" }', 'options = { scor = "ssge" }')
    message = error_of(tmp_path, text)
    assert "estimator.options." in message and "scor" in message and "Did you mean 'score'" in message


def test_nested_score_option_is_reported_under_estimator_options(tmp_path: Path) -> None:
    text = BASE.replace('{ score = "ssge" }', '{ score = "ssge", score_options = { treshold = 0.9 } }')
    message = error_of(tmp_path, text)
    assert "estimator.options" in message and "treshold" in message and "threshold" in message


def test_unknown_block_suggests(tmp_path: Path) -> None:
    message = error_of(tmp_path, BASE + "\n[trian]\nepochs = 2\n")
    assert "trian" in message and "Did you mean 'train'" in message


def test_train_key_typo_and_type(tmp_path: Path) -> None:
    message = error_of(tmp_path, BASE.replace("epochs = 1", "epoch = 1"))
    assert "train.epoch " in message and "Did you mean 'epochs'" in message
    message = error_of(tmp_path, BASE.replace("epochs = 1", 'epochs = "ten"'))
    assert "train.epochs " in message and "must be int" in message


def test_value_checks_name_the_key(tmp_path: Path) -> None:
    assert "train.lr_decay" in error_of(tmp_path, BASE + "lr_decay = 1.5\n")
    assert "train.device" in error_of(tmp_path, BASE + 'device = "tpu"\n')


def test_unknown_task_dataset_and_estimator_names(tmp_path: Path) -> None:
    message = error_of(tmp_path, BASE.replace('name = "ib"', 'name = "ibb"'))
    assert "task.name" in message and "'ib'" in message
    message = error_of(tmp_path, BASE.replace('name = "synthetic"', 'name = "digit"'))
    assert "data.name" in message and "Did you mean 'digits'" in message
    message = error_of(tmp_path, BASE.replace('name = "mige"', 'name = "mgie"'))
    assert "estimator.name" in message and "'mige'" in message


def test_task_option_literal_is_checked(tmp_path: Path) -> None:
    message = error_of(tmp_path, BASE.replace('method = "mi"', 'method = "vibe"'))
    assert "task.options.method" in message and "baseline" in message


def test_estimator_block_must_match_the_method(tmp_path: Path) -> None:
    without = BASE.replace('[estimator]\nname = "mige"\noptions = { score = "ssge" }\n', "")
    assert "needs an [estimator]" in error_of(tmp_path, without)
    assert "uses no estimator" in error_of(tmp_path, BASE.replace('method = "mi"', 'method = "vib"'))


def test_missing_block_and_bad_shapes() -> None:
    with pytest.raises(ConfigError, match="missing block \\[data\\]"):
        parse_config({"task": {"name": "ib"}})
    with pytest.raises(ConfigError, match="data.nme: unknown key.*Did you mean 'name'"):
        parse_config({"task": {"name": "ib"}, "data": {"nme": "digits"}})
    with pytest.raises(ConfigError, match="task.options must be a table"):
        parse_config({"task": {"name": "ib", "options": 3}, "data": {"name": "digits"}})


def test_toml_syntax_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[task\nname = 1"))
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.toml")


def test_missing_mnist_files_fail_check_with_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mnist = f'name = "mnist"\noptions = {{ root = "{tmp_path}" }}'
    text = BASE.replace('name = "synthetic"\noptions = { train_size = 200 }', mnist)
    assert main(["check", str(write(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    assert "data.options.root" in err and "download = true" in err


def test_an_option_records_own_check_is_prefixed_by_its_block(tmp_path: Path) -> None:
    message = error_of(tmp_path, BASE + "\n[model]\nhidden = [16, 0]\n")
    assert "run.toml: model.hidden must hold positive integer widths, got [16, 0]" in message
    message = error_of(tmp_path, BASE + "\n[eval]\nmi_every = -1\n")
    assert "eval.mi_every must be >= 0" in message


def test_resolve_uses_the_registry_it_is_given(tmp_path: Path) -> None:
    """A registry with the default plugins only resolves the task and MIGE but not MIGE's score "ssge";
    once the ssge plugin is loaded into it, the estimator recipe carries it and builds with it."""
    pytest.importorskip("mireg_ssge")
    registry = Registry()
    registry.load_modules(DEFAULT_PLUGINS, distribution="mireg", version="0")
    config = load_config(write(tmp_path, BASE))
    with pytest.raises(ConfigError, match="estimator.options.*ssge"):
        resolve(config, registry)
    registry.load_modules(["mireg_ssge"], distribution="mireg-ssge", version="0")
    recipe = resolve(config, registry).estimator
    assert recipe is not None and recipe.registry is registry and recipe.cls.name == "mige"
    assert recipe.build() is not recipe.build()


def test_a_qualified_estimator_name_builds_when_two_plugins_share_the_short_name(tmp_path: Path) -> None:
    """``name = "mireg/mige"`` picks one of two registered "mige" estimators; the trainer's recipe must
    build that one, not look the ambiguous short name up again."""
    pytest.importorskip("mireg_ssge")

    class OtherMIGE(MIGE):
        """A second estimator registered as "mige"."""

    @mireg.hookimpl
    def register_mi_gradient_estimators(register):  # type: ignore[no-untyped-def]
        register(OtherMIGE)

    other = types.ModuleType("other_mige")
    other.register_mi_gradient_estimators = register_mi_gradient_estimators  # type: ignore[attr-defined]
    registry = Registry()
    registry.load_modules([*DEFAULT_PLUGINS, "mireg_ssge"], distribution="mireg", version="0")
    registry.register_plugin(other, distribution="mireg-other")
    config = load_config(write(tmp_path, BASE.replace('name = "mige"', 'name = "mireg/mige"')))
    recipe = resolve(config, registry).estimator
    assert recipe is not None and type(recipe.build()) is MIGE
