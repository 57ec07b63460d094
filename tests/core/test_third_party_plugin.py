"""A third-party plugin works with no change to mireg: real distributions, installed with pip.

Two tiny distributions are built in a temporary directory and pip-installed into the running
environment: one provides a score estimator through the ``mireg.plugins`` entry point, the other
raises on import. Discovery runs in fresh interpreters, as a user's would. Both are uninstalled
afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

GOOD = "mireg-thirdparty-fixture"
BROKEN = "mireg-broken-fixture"


def _write_distribution(root: Path, distribution: str, module: str, source: str) -> Path:
    folder = root / distribution
    (folder / "src" / module).mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{distribution}"
            version = "0.0.7"

            [project.entry-points."mireg.plugins"]
            {module} = "{module}"
            """
        )
    )
    (folder / "src" / module / "__init__.py").write_text(textwrap.dedent(source))
    return folder


GOOD_SOURCE = '''
    """A third party's score estimator."""
    import mireg


    class Negative(mireg.ScoreEstimator):
        """Score of a standard normal, whatever the samples.

        Options:
          scale: multiplies the score
        """

        name = "thirdparty"

        def __init__(self, *, scale: float = 1.0) -> None:
            self.scale = scale

        def _score(self, samples, at):
            return -self.scale * (samples if at is None else at)


    @mireg.hookimpl
    def register_score_estimators(register):
        register(Negative)
'''

BROKEN_SOURCE = """
    raise ImportError("this fixture plugin is broken on purpose")
"""


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True)


def _mireg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mireg", *args], capture_output=True, text=True, check=True)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    root = tmp_path_factory.mktemp("dists")
    good = _write_distribution(root, GOOD, "mireg_thirdparty_fixture", GOOD_SOURCE)
    broken = _write_distribution(root, BROKEN, "mireg_broken_fixture", BROKEN_SOURCE)
    _pip("install", "--no-deps", str(good), str(broken))
    try:
        yield
    finally:
        _pip("uninstall", "-y", GOOD, BROKEN)


def test_listing_finds_the_third_party_estimator(installed: None) -> None:
    records = json.loads(_mireg("list", "--json").stdout)
    mine = [r for r in records if r["name"] == "thirdparty"]
    assert mine == [
        {
            "name": "thirdparty",
            "kind": "score",
            "plugin": GOOD,
            "version": "0.0.7",
            "summary": "Score of a standard normal, whatever the samples.",
            "aliases": [],
        }
    ]


def test_the_broken_plugin_is_reported_and_breaks_nothing(installed: None) -> None:
    result = _mireg("plugins", "--json")
    plugins = {p["distribution"]: p for p in json.loads(result.stdout)}
    assert plugins[GOOD]["status"] == "ok" and plugins[GOOD]["estimators"] == ["thirdparty"]
    assert plugins[BROKEN]["status"] == "failed"
    assert plugins[BROKEN]["version"] == "0.0.7"
    assert "this fixture plugin is broken on purpose" in plugins[BROKEN]["error"]
    assert f"mireg plugin {BROKEN} 0.0.7 failed to load" in result.stderr  # the warning


def test_the_estimator_is_built_by_name_with_options(installed: None) -> None:
    code = (
        "import torch, mireg, warnings; warnings.simplefilter('ignore');"
        "est = mireg.score_estimator('thirdparty', scale=2.0);"
        "print(est.score(torch.ones(3, 2)).tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [[-2.0, -2.0]] * 3
