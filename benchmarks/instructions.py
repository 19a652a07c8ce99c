"""Instructions per miss, counted by valgrind's callgrind (issue 16; not part of `make bench`).

    python -m benchmarks.instructions [--systems floor,memo,cachekit,theine,cachebox] [--n 2000]

Each system of the `misses` scenario (maxsize 1,000, no ttl, filled past its bound) takes
`n` and then `3 n` misses of keys it has never seen, each run a process of its own under
callgrind; the difference of the two totals over `2 n` is what one miss costs, with the
interpreter's start, the imports and the fill cancelled out. An instruction count does not
depend on what else the machine runs, where a time ratio wanders by several percent here.
Both loaders of the scenario: one that returns at once, one that awaits `asyncio.sleep(0)`.
`floor` is the scenario's single-flight floor (a task per miss), `memo` its OrderedDict memo
(the loader awaited inline, no single flight): their difference is what a task per miss
costs by itself.

The `sleep(0)` row minus the `returns at once` row is what suspending costs each system: the
suspension itself and the event-loop iterations that follow it. A design that runs the
loader in a task of its own (the floor, cachekit) pays one iteration more there than one
that runs it inline in its first caller (theine, cachebox): the task's step, then its
caller's. That difference is what the printed `suspending` column shows on 3.12; on 3.11,
which has no eager tasks, a task pays its iterations even for a loader that does not wait.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .adapters import Options, all_adapters
from .misses import LOADERS, MAXSIZE, _ordered_dict, _single_flight

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SYSTEMS = ("floor", "memo", "cachekit", "theine", "cachebox")
_TOTAL = re.compile(r"^summary:\s+(\d+)", re.MULTILINE)


def _build(system: str, loader_name: str) -> object:
    loader = LOADERS[loader_name]
    options = Options(maxsize=MAXSIZE, ttl=None)
    if system == "floor":  # the single-flight floor: a task per miss
        return _single_flight(loader, options)[0]
    if system == "memo":  # an OrderedDict memo that evicts: the loader inline, no flight
        return _ordered_dict(loader, options)[0]
    for adapter in all_adapters():
        if adapter.name == system:
            if not adapter.probe():
                raise SystemExit(f"{system}: {adapter.skipped}")
            return adapter.make(loader, options)[0]
    raise SystemExit(f"unknown system {system!r}")


async def _misses(system: str, loader_name: str, n: int) -> None:
    fn = _build(system, loader_name)
    for key in range(MAXSIZE):  # past its bound: every miss below evicts
        await fn(-key - 1)  # type: ignore[operator]
    for key in range(n):
        await fn(key)  # type: ignore[operator]


def _count(system: str, loader_name: str, n: int, scratch: Path) -> int:
    """The instructions of one process that runs `n` misses, as callgrind counts them."""
    out = scratch / f"callgrind.{system}.{n}"
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "benchmarks.instructions",
        "--child",
        system,
        loader_name,
        str(n),
    ]
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{system} under callgrind failed:\n{done.stderr[-2000:]}")
    found = _TOTAL.search(out.read_text())
    if found is None:
        raise SystemExit(f"no total in {out}")
    return int(found.group(1))


def per_miss(system: str, loader_name: str, n: int, scratch: Path) -> float:
    """One miss's instructions: the runs of 3 n and of n misses, their difference over 2 n."""
    longer = _count(system, loader_name, 3 * n, scratch)
    return (longer - _count(system, loader_name, n, scratch)) / (2 * n)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS))
    parser.add_argument("--n", type=int, default=2000, help="misses of the shorter run")
    parser.add_argument("--child", nargs=3, metavar=("SYSTEM", "LOADER", "N"), help="internal")
    args = parser.parse_args(argv)
    if args.child:
        system, loader_name, n = args.child
        asyncio.run(_misses(system, loader_name, int(n)))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    systems = [s for s in args.systems.split(",") if s]
    version = ".".join(map(str, sys.version_info[:3]))
    print(f"instructions per miss, CPython {version}, maxsize {MAXSIZE}, n {args.n}")
    print("| system | returns at once | sleep(0) | suspending | x floor, at once / sleep(0) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        rows = {
            system: {name: per_miss(system, name, args.n, Path(scratch)) for name in LOADERS}
            for system in systems
        }
    floor = rows.get("floor")
    for system, row in rows.items():
        at_once, suspends = row["returns at once"], row["sleep(0)"]
        ratios = (
            f"{at_once / floor['returns at once']:.2f}x / {suspends / floor['sleep(0)']:.2f}x"
            if floor
            else ""
        )
        print(
            f"| {system} | {at_once / 1000:.1f}k | {suspends / 1000:.1f}k "
            f"| {(suspends - at_once) / 1000:.1f}k | {ratios} |"
        )


if __name__ == "__main__":
    main()
