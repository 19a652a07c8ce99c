"""The sessions behind `make test` and `make dist` (nox; `make` installs it in .venv).

- lint: ruff, ruff format --check and mypy --strict, once, on the lowest supported Python.
- tests-3.X: the suite (pytest -W error) on every supported CPython found here, each with the
  newest cachetools and redis-py the dependencies allow (the upper bounds).
- lowest: the suite on the lowest supported Python with the lowest declared cachetools and
  redis-py (the newest patch release of each floor: `>=5.3` is tested as 5.3.x).
- dist: builds the sdist and the wheel into dist/, runs `twine check --strict`, then installs
  the wheel into a fresh virtualenv without extras (tests/test_wheel.py).

The supported Pythons are the `Programming Language :: Python :: 3.X` classifiers of
pyproject.toml, and the bounds its requirements: one place for each fact. Interpreters are
looked for on PATH and under pyenv's versions/ (not every pyenv version is on PATH); the ones
found are linked into .nox/bin, which goes first on PATH, so that nox's own lookup by name
(`python3.12`) finds them. A missing one is reported and its session skipped; with
`--error-on-missing-interpreters` (what CI passes) it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nox
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
CLASSIFIER = re.compile(r"Programming Language :: Python :: (3\.\d+)")


def _minor(version: str) -> int:
    return int(version.split(".")[1])


PYTHONS = sorted(
    {m.group(1) for c in PROJECT["classifiers"] if (m := CLASSIFIER.fullmatch(c))}, key=_minor
)
LOWEST_PYTHON = PYTHONS[0]

nox.options.sessions = ["lint", "tests", "lowest", "dist"]
nox.options.default_venv_backend = "venv"  # the stdlib's: no virtualenv seed downloads


def _floor(requirement: str) -> str:
    """The version after `>=` in a requirement such as `cachetools>=5.3,<9`."""
    for spec in Requirement(requirement).specifier:
        if spec.operator == ">=":
            return spec.version
    raise ValueError(f"{requirement!r} declares no lower bound")


def _requirement(name: str, requirements: list[str]) -> str:
    return next(r for r in requirements if Requirement(r).name == name)


# The lowest declared versions, tested by the `lowest` session.
FLOORS = {
    "cachetools": _floor(_requirement("cachetools", PROJECT["dependencies"])),
    "redis": _floor(_requirement("redis", PROJECT["optional-dependencies"]["redis"])),
}


def _probe(executable: str) -> tuple[str, str] | None:
    """(real path, full version) of a working CPython at `executable`, else None."""
    script = (
        "import platform, sys; "
        "print(sys.executable); print(platform.python_implementation()); "
        "print(platform.python_version())"
    )
    try:
        done = subprocess.run(
            [executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.split()
    if done.returncode != 0 or len(lines) != 3 or lines[1] != "CPython":
        return None  # e.g. a pyenv shim for a version that is not activated
    return lines[0], lines[2]


def _candidates(version: str) -> list[str]:
    found = shutil.which(f"python{version}")
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    # Newest patch release first: 3.12.10 before 3.12.9.
    under_pyenv = sorted(
        pyenv.glob(f"{version}.*/bin/python{version}"),
        key=lambda p: [int(x) if x.isdigit() else -1 for x in p.parent.parent.name.split(".")],
        reverse=True,
    )
    return [c for c in [found, *map(str, under_pyenv)] if c]


def _find_interpreters() -> dict[str, tuple[str, str]]:
    """Each supported version found here: version -> (path, full version)."""
    bin_dir = ROOT / ".nox" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    found: dict[str, tuple[str, str]] = {}
    for version in PYTHONS:
        link = bin_dir / f"python{version}"
        link.unlink(missing_ok=True)  # never a stale link from another machine
        for candidate in _candidates(version):
            probed = _probe(candidate)
            if probed is not None and probed[1].startswith(f"{version}."):
                found[version] = probed
                link.symlink_to(probed[0])
                break
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    return found


def _undeclared() -> dict[str, tuple[str, str]]:
    """Newer CPythons found here that pyproject does not declare (so nothing tests them)."""
    found: dict[str, tuple[str, str]] = {}
    for minor in range(_minor(PYTHONS[-1]) + 1, _minor(PYTHONS[-1]) + 4):
        version = f"3.{minor}"
        for candidate in _candidates(version):
            probed = _probe(candidate)
            if probed is not None and probed[1].startswith(f"{version}."):
                found[version] = probed
                break
    return found


INTERPRETERS = _find_interpreters()
for _version in PYTHONS:
    if _version in INTERPRETERS:
        _path, _full = INTERPRETERS[_version]
        print(f"nox: Python {_version}: CPython {_full} at {_path}", file=sys.stderr)
    else:
        print(f"nox: Python {_version}: NOT FOUND (its sessions are skipped)", file=sys.stderr)
for _version, (_path, _full) in _undeclared().items():
    print(
        f"nox: Python {_version}: CPython {_full} at {_path} is not declared in pyproject's "
        "classifiers, so it is not tested",
        file=sys.stderr,
    )

LINT_PATHS = ["cachekit", "tests", "benchmarks", "noxfile.py"]


def _show_versions(session: nox.Session) -> None:
    """Say which Python and dependency versions this session tests (for CI's log)."""
    script = (
        "import platform, importlib.metadata as m; "
        "print('CPython', platform.python_version(), 'with', "
        "', '.join(f'{d} {m.version(d)}' for d in ('cachetools', 'redis')))"
    )
    versions = session.run("python", "-c", script, silent=True)
    session.log(f"testing on {str(versions).strip()}")


@nox.session(python=LOWEST_PYTHON)
def lint(session: nox.Session) -> None:
    """ruff, ruff format --check, mypy --strict on cachekit/."""
    session.install("-e", ".[test]")
    session.run("ruff", "check", *LINT_PATHS)
    session.run("ruff", "format", "--check", *LINT_PATHS)
    session.run("mypy", "--strict", "cachekit")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The suite with the newest dependencies allowed."""
    session.install("-e", ".[test]")
    _show_versions(session)
    session.run("pytest", "-W", "error", *session.posargs)


@nox.session(python=LOWEST_PYTHON)
def lowest(session: nox.Session) -> None:
    """The suite with the lowest declared cachetools and redis-py."""
    pins = [f"{name}=={version}.*" for name, version in FLOORS.items()]
    session.install("-e", ".[test]", *pins)
    _show_versions(session)
    session.run("pytest", "-W", "error", *session.posargs)


@nox.session(python=LOWEST_PYTHON)
def dist(session: nox.Session) -> None:
    """Build the sdist and the wheel, check them with twine, test the wheel in a fresh venv."""
    session.install("-e", ".[test]")
    out = ROOT / "dist"
    shutil.rmtree(out, ignore_errors=True)
    # No build isolation: hatchling comes from this session, so building needs no download.
    session.run("python", "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT))
    built = sorted(out.iterdir())
    session.run("twine", "check", "--strict", *map(str, built))
    wheel = next(p for p in built if p.name.endswith(".whl"))
    sdist = next(p for p in built if p.name.endswith(".tar.gz"))
    session.run(
        "pytest",
        "-W",
        "error",
        "-m",
        "wheel",
        "tests/test_wheel.py",
        env={"CACHEKIT_WHEEL": str(wheel), "CACHEKIT_SDIST": str(sdist)},
    )
