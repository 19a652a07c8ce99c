"""Fallback installer for the `bench` extra: one requirement at a time.

`make bench` first installs `.[bench]` in one pip call. If that fails (one peer has no wheel
for this Python, say), this installs cachekit and then each requirement of the extra on its
own, so the harness still runs and reports the missing peer as "skipped: <reason>" instead of
not running at all. It measures nothing.

Run: python -m benchmarks.install
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements: list[str] = project["optional-dependencies"]["bench"]
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "-e", str(ROOT)], check=True)
    failed = []
    for requirement in requirements:
        if subprocess.run([*pip, requirement]).returncode != 0:
            failed.append(requirement)
    for requirement in failed:
        print(f"bench extra: could not install {requirement}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
