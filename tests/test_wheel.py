"""The built distributions, as a user gets them: `pip install cachekit-async` without extras.

Marked `wheel` and deselected by default (it builds and creates a virtualenv: seconds, not
milliseconds); `make dist` (nox's `dist` session, which `make test` and CI run too) runs it on
the wheel and sdist it has just built and passed to `twine check`, named by CACHEKIT_WHEEL and
CACHEKIT_SDIST. Run alone (`pytest -m wheel tests/test_wheel.py`), it builds them itself.

The fresh virtualenv installs the wheel with `--no-index`: the only other file it may use is
a cachetools wheel fetched first by `pip download` (from pip's cache when it has one), so the
wheel's declared dependencies are exactly what is installed, and no redis-py.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

import cachekit

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "cachekit-async"
HINT = "pip install 'cachekit-async[redis]'"


def _run(*command: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=300, cwd=cwd
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel and sdist `make dist` built, or ones built here from the checkout."""
    wheel, sdist = os.environ.get("CACHEKIT_WHEEL"), os.environ.get("CACHEKIT_SDIST")
    if wheel and sdist:
        return {"wheel": Path(wheel), "sdist": Path(sdist)}
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT)
    return {
        "wheel": next(out.glob("*.whl")),
        "sdist": next(out.glob("*.tar.gz")),
    }


def test_the_wheel_installs_without_extras_and_names_the_redis_extra(
    built: dict[str, Path], tmp_path: Path
) -> None:
    deps = tmp_path / "deps"
    cachetools = f"cachetools=={importlib.metadata.version('cachetools')}"
    _run(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", deps, cachetools)
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    listing = "import importlib.metadata as m; print(sorted(d.name for d in m.distributions()))"
    bare = eval(_run(python, "-c", listing))  # what a new venv has: pip, maybe setuptools
    _run(
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-index",
        "--find-links",
        deps,
        built["wheel"],
    )
    # Run outside the checkout, so that `import cachekit` cannot find the source tree.
    script = """
import importlib.metadata, importlib.util, pathlib
import cachekit
print(cachekit.__file__)
print(cachekit.__version__, importlib.metadata.version("cachekit-async"))
print(sorted(d.name for d in importlib.metadata.distributions()))
print(importlib.util.find_spec("redis") is None)
print((pathlib.Path(cachekit.__file__).parent / "py.typed").exists())
try:
    import cachekit.redis
except ImportError as exc:
    print("ImportError:", exc)
else:
    print("imported")
"""
    lines = _run(python, "-c", script, cwd=tmp_path).splitlines()
    location, versions, names, no_redis, typed, redis_import = lines
    assert location.startswith(str(venv)), location
    assert versions == f"{cachekit.__version__} {cachekit.__version__}"
    assert set(eval(names)) - set(bare) == {"cachekit-async", "cachetools"}, names
    assert no_redis == "True"
    assert typed == "True"
    assert redis_import.startswith("ImportError: cachekit.redis needs redis-py")
    assert redis_import.endswith(HINT), redis_import


def test_the_wheel_and_the_sdist_carry_the_license_and_the_metadata(
    built: dict[str, Path],
) -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    version = cachekit.__version__
    stem = f"cachekit_async-{version}"
    assert built["wheel"].name == f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = set(wheel.namelist())
        assert wheel.read(f"{stem}.dist-info/licenses/LICENSE").decode() == license_text
        metadata = wheel.read(f"{stem}.dist-info/METADATA").decode()
    assert "cachekit/py.typed" in names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names), names
    headers = metadata.split("\n\n", 1)[0].splitlines()
    assert f"Name: {DISTRIBUTION}" in headers
    assert f"Version: {version}" in headers
    assert "License-Expression: MIT" in headers
    assert "Requires-Python: >=3.11" in headers
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["classifiers"]
    assert [h.removeprefix("Classifier: ") for h in headers if h.startswith("Classifier:")] == (
        declared
    )
    for classifier in ("Framework :: AsyncIO", "Typing :: Typed"):
        assert classifier in declared
    assert "Provides-Extra: redis" in headers
    with tarfile.open(built["sdist"]) as sdist:
        members = set(sdist.getnames())
        extracted = sdist.extractfile(f"{stem}/LICENSE")
        assert extracted is not None and extracted.read().decode() == license_text
    assert f"{stem}/cachekit/py.typed" in members
    assert f"{stem}/CHANGELOG.md" in members
