import importlib.metadata
import re
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


def _figures(text: str) -> set[str]:
    """Numbers that read as measurements: with a decimal point, or of three digits or more."""
    numbers = re.findall(r"(?<![\w.,-])\d[\d,]*(?:\.\d+)?(?![\w-]|[.,]\d)", text)
    return {n for n in numbers if "." in n or len(n.replace(",", "")) >= 3}


def test_the_changelog_quotes_the_readmes_figures() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    release = changelog[changelog.index(f"\n## [{cachekit.__version__}]") :]
    readme = (ROOT / "README.md").read_text()
    figures = _figures(release)
    assert {"5.98", "13.94", "257"} <= figures  # the extraction finds what it should
    assert figures <= _figures(readme), figures - _figures(readme)


def test_the_benchmark_readme_has_no_placeholder_left() -> None:
    text = (ROOT / "benchmarks" / "README.md").read_text().lower()
    for placeholder in ("to be filled", "draft", "todo", "tbd", "xxx"):
        assert placeholder not in text, placeholder
    assert "CACHEKIT_TRACES" in (ROOT / "benchmarks" / "README.md").read_text()
