"""Scenario 2, stampede: N concurrent callers on one cold key whose loader sleeps 20 ms.

For N = 100, 1,000 and 10,000, each system gets a freshly built function (maxsize 10,000,
ttl=60) and N tasks are gathered on `fn(0)`. Measured: loader calls (ideal 1), the wall time
from the first task's creation until all N have their answer, and the coordination overhead
(wall time minus the 20 ms sleep). Just before each system, an ideal single flight is timed the
same way: the first of N tasks starts the loader as a task and all N await that one future. The
figure is the median over repeats of wall(system) / wall(ideal measured just before it).

Each stampede runs twice: with the garbage collector paused (`x ideal`, the wall-time ratio)
and with it running as usual (`x ideal overhead, gc on`: the median over repeats of
(wall - 20 ms) / (ideal wall - 20 ms), both measured with gc on). The second is the stricter
measure: the sleep no longer hides the coordination, and collections triggered by the
callers' own allocations count.

Targets: at 10,000 callers, cachekit at most 1.3x the ideal by both measures (issues 3 and
16), exactly one loader call.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Iterator
from typing import Any

from .adapters import Options
from .common import Context, Result, Target, gc_paused, median, rotated, skipped_rows

SLEEP = 0.020
TARGET = 1.3


@contextlib.contextmanager
def _collector(running: bool) -> Iterator[None]:
    """gc paused for the timing, or running as usual (after a full collection either way)."""
    if not running:
        with gc_paused():
            yield
        return
    gc.collect()
    yield


async def _ideal(n: int, gc_on: bool = False) -> float:
    flight: asyncio.Task[int] | None = None

    async def load() -> int:
        await asyncio.sleep(SLEEP)
        return 1

    async def caller() -> int:
        nonlocal flight
        if flight is None:
            flight = asyncio.ensure_future(load())
        return await flight

    with _collector(gc_on):
        began = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(n)))
        return time.perf_counter() - began


async def _system(build: Any, n: int, gc_on: bool = False) -> tuple[float, int, int]:
    calls = 0

    async def load(x: int) -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(SLEEP)
        return x + 1

    fn, cleanup = build(load, Options(maxsize=10_000, ttl=60.0))

    async def caller() -> Any:
        return await fn(0)

    with _collector(gc_on):
        began = time.perf_counter()
        outcomes = await asyncio.gather(*(caller() for _ in range(n)), return_exceptions=True)
        wall = time.perf_counter() - began
    errors = sum(1 for o in outcomes if isinstance(o, BaseException))
    if cleanup is not None:
        await cleanup()
    return wall, calls, errors


SIZES = [100, 1_000, 10_000]


def _repeats(ctx: Context) -> int:
    return 2 if ctx.quick else 5


def steps(ctx: Context) -> int:
    """The progress steps run() takes: one per stampede."""
    return 2 * len(SIZES) * _repeats(ctx) * len(ctx.systems)


async def run(ctx: Context) -> Result:
    sizes = SIZES
    repeats = _repeats(ctx)
    systems = ctx.systems
    rows: list[dict[str, Any]] = []
    for n in sizes:
        ratio: dict[str, list[float]] = {s.name: [] for s in systems}
        overhead_gc: dict[str, list[float]] = {s.name: [] for s in systems}
        walls: dict[str, list[float]] = {s.name: [] for s in systems}
        ideals: list[float] = []
        calls: dict[str, int] = {}
        errors: dict[str, int] = {}
        for r in range(repeats):
            for system in rotated(systems, r):
                ideal = await _ideal(n)
                wall, loads, failed = await _system(system.build, n)
                ideals.append(ideal)
                ratio[system.name].append(wall / ideal)
                walls[system.name].append(wall)
                calls[system.name] = max(calls.get(system.name, 0), loads)
                errors[system.name] = max(errors.get(system.name, 0), failed)
                ctx.progress.step(f"stampede N={n} {system.name}")
                ideal = await _ideal(n, gc_on=True)
                wall, loads, failed = await _system(system.build, n, gc_on=True)
                overhead_gc[system.name].append((wall - SLEEP) / (ideal - SLEEP))
                calls[system.name] = max(calls[system.name], loads)
                errors[system.name] = max(errors[system.name], failed)
                ctx.progress.step(f"stampede N={n} {system.name}, gc on")
        ideal_ms = median(ideals) * 1e3
        for system in systems:
            wall_ms = median(walls[system.name]) * 1e3
            rows.append(
                {
                    "system": system.name,
                    "N": n,
                    "loader calls": calls[system.name],
                    "x ideal": median(ratio[system.name]),
                    "wall ms": wall_ms,
                    "overhead ms": wall_ms - SLEEP * 1e3,
                    "ideal overhead ms": ideal_ms - SLEEP * 1e3,
                    "x ideal overhead, gc on": median(overhead_gc[system.name]),
                    "worst, gc on": max(overhead_gc[system.name]),
                    "errors": errors[system.name],
                    "note": system.note if system.floor else "",
                }
            )
        await asyncio.sleep(0)
    rows.extend(skipped_rows(ctx))
    return Result(
        "stampede",
        "Stampede: N callers on one cold key, loader sleeps 20 ms (maxsize 10,000, ttl 60)",
        rows,
        notes=[
            f"{repeats} interleaved repeats; x ideal = median of wall / wall of an ideal single "
            "flight (N tasks awaiting one future) timed just before; overhead = wall - 20 ms.",
            "x ideal overhead, gc on: median of (wall - 20 ms) / (ideal wall - 20 ms), both "
            "timed with the garbage collector running; worst: the largest in any repeat.",
            "bare and dict have no coordination: every caller runs the loader.",
            "loader calls and errors: the largest seen in any repeat.",
        ],
        targets=[_target(rows)],
    )


def _target(rows: list[dict[str, Any]]) -> Target:
    name = "stampede, N=10,000"
    want = f"<= {TARGET}x ideal single flight (wall, and overhead with gc on), 1 loader call"
    ck = next((r for r in rows if r["system"] == "cachekit" and r["N"] == 10_000), None)
    if ck is None:
        return Target(name, want, "cachekit not measured", None)
    value = (
        f"{ck['x ideal']:.3f}x ideal; overhead with gc on {ck['x ideal overhead, gc on']:.2f}x "
        f"(worst {ck['worst, gc on']:.2f}x); {ck['loader calls']} loader call(s)"
    )
    met = ck["x ideal"] <= TARGET and ck["worst, gc on"] <= TARGET and ck["loader calls"] == 1
    return Target(name, want, value, met)
