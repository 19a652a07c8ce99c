import importlib.metadata
import tomllib
from pathlib import Path

import cachekit

ROOT = Path(__file__).resolve().parent.parent


def test_the_version_is_written_once_and_is_the_distributions() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert pyproject["name"] == "cachekit-async"
    assert "version" in pyproject["dynamic"] and "version" not in pyproject
    assert cachekit.__version__ == importlib.metadata.version("cachekit-async") == "0.1.0"


def test_the_changelog_has_a_section_for_the_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "\n## [Unreleased]\n" in changelog
    assert f"\n## [{cachekit.__version__}] - " in changelog
