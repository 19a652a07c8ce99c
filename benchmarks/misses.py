"""Scenario misses: the cost of one miss, in a bounded cache that evicts on every insert.

Each system is built with maxsize 1,000 and no ttl, filled past its bound, then timed on
`await fn(k)` over keys it has never seen (so every call is a miss that loads, inserts and
evicts). Two loaders: one that returns at once (`async def` with no await), one that suspends
once (`await asyncio.sleep(0)`). Systems are interleaved within each repeat; a repeat's figure
is the system's microseconds per miss divided by the single-flight floor's in that same
repeat.

The floors:
  single-flight  the minimal single flight this design can be: a dict of tasks (one task per
                 miss, eagerly started on Python 3.12+, as cachekit does), an OrderedDict
                 store; no ttl, no statistics, no lock, no cancellation shielding
  ordereddict    an OrderedDict memo that evicts: no single flight at all

Then a fill: each system built anew in every repeat with room for every key (20,000 quick,
100,000 full), filled once with keys it has never seen by a loader that returns at once: the
cost of an insert that evicts nothing, as when a service starts cold.

Targets (issue 16): on Python 3.12+, cachekit's miss costs at most theine's; on Python 3.11
(no eager tasks), at most 1.5x the single-flight floor's; a fill insert at most 2x cachebox's.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .adapters import Adapter, Cached, Cleanup, Loader, Options
from .common import Context, Result, Target, fmt_ratio, gc_paused, median, rotated, skipped_rows

MAXSIZE = 1_000
PEERS = ("cachekit", "theine", "cachebox", "async-lru")
TARGET_311 = 1.5
TARGET_FILL = 2.0  # x cachebox's microseconds per insert
FILL_LOADER = "fill, no eviction"


async def _at_once(x: int) -> int:
    return x


async def _suspends_once(x: int) -> int:
    await asyncio.sleep(0)
    return x


LOADERS: dict[str, Loader] = {"returns at once": _at_once, "sleep(0)": _suspends_once}

_MISSING = object()


def _spawn(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    if sys.version_info >= (3, 12):
        return asyncio.Task(coro, loop=asyncio.get_running_loop(), eager_start=True)
    return asyncio.get_running_loop().create_task(coro)


def _single_flight(loader: Loader, options: Options) -> tuple[Cached, Cleanup]:
    store: OrderedDict[int, Any] = OrderedDict()
    flights: dict[int, asyncio.Task[Any]] = {}
    maxsize = options.maxsize

    async def load(x: int) -> Any:
        try:
            value = await loader(x)
        finally:
            flights.pop(x, None)
        store[x] = value
        if len(store) > maxsize:
            store.popitem(last=False)
        return value

    async def fn(x: int) -> Any:
        value = store.get(x, _MISSING)
        if value is not _MISSING:
            store.move_to_end(x)
            return value
        task = flights.get(x)
        if task is None:
            task = _spawn(load(x))
            if not task.done():
                flights[x] = task
        return await task

    return fn, None


def _ordered_dict(loader: Loader, options: Options) -> tuple[Cached, Cleanup]:
    store: OrderedDict[int, Any] = OrderedDict()
    maxsize = options.maxsize

    async def fn(x: int) -> Any:
        value = store.get(x, _MISSING)
        if value is not _MISSING:
            store.move_to_end(x)
            return value
        value = await loader(x)
        store[x] = value
        if len(store) > maxsize:
            store.popitem(last=False)
        return value

    return fn, None


FLOORS = [
    Adapter("single-flight", None, (), _single_flight, floor=True, note="the design's floor"),
    Adapter("ordereddict", None, (), _ordered_dict, floor=True, note="no single flight"),
]


async def _us_per_miss(fn: Callable[[int], Awaitable[Any]], first: int, count: int) -> float:
    with gc_paused():
        began = time.perf_counter()
        for key in range(first, first + count):
            await fn(key)
        spent = time.perf_counter() - began
    return spent / count * 1e6


def _repeats(ctx: Context) -> int:
    return 5 if ctx.quick else 9


def _systems(ctx: Context) -> list[Adapter]:
    return [*FLOORS, *(a for a in ctx.systems if a.name in PEERS)]


def steps(ctx: Context) -> int:
    """The progress steps run() takes: one per timed pass."""
    return (len(LOADERS) + 1) * _repeats(ctx) * len(_systems(ctx))


async def _fill(ctx: Context, systems: list[Adapter], repeats: int) -> dict[str, list[float]]:
    """Microseconds per insert into a cache with room for every key, per system and repeat."""
    size = 20_000 if ctx.quick else 100_000
    per_repeat: dict[str, list[float]] = {s.name: [] for s in systems}
    for r in range(repeats):
        for system in rotated(systems, r):
            fn, cleanup = system.build(_at_once, Options(maxsize=size, ttl=None))
            await fn(-1)  # the first call outside the timing (lazy set-up)
            per_repeat[system.name].append(await _us_per_miss(fn, 0, size))
            if cleanup is not None:
                await cleanup()
            ctx.progress.step(f"misses fill {system.name}")
    return per_repeat


async def run(ctx: Context) -> Result:
    repeats = _repeats(ctx)
    count = 3_000 if ctx.quick else 20_000
    systems = _systems(ctx)
    rows: list[dict[str, Any]] = []
    targets: list[Target] = []
    for loader_name, loader in LOADERS.items():
        built: dict[str, Cached] = {}
        cleanups = []
        for system in systems:
            fn, cleanup = system.build(loader, Options(maxsize=MAXSIZE, ttl=None))
            for key in range(-3 * MAXSIZE, 0):  # past the bound: every timed insert evicts
                await fn(key)
            built[system.name] = fn
            if cleanup is not None:
                cleanups.append(cleanup)
        per_repeat: dict[str, list[float]] = {s.name: [] for s in systems}
        next_key = 0
        for r in range(repeats):
            for system in rotated(systems, r):
                us = await _us_per_miss(built[system.name], next_key, count)
                per_repeat[system.name].append(us)
                ctx.progress.step(f"misses {loader_name} {system.name}")
            next_key += count  # every system sees keys new to it in every repeat
        for cleanup in cleanups:
            await cleanup()
        rows.extend(_rows(systems, per_repeat, loader_name))
        targets.append(_target(rows, loader_name))
    rows.extend(_rows(systems, await _fill(ctx, systems, repeats), FILL_LOADER))
    targets.append(_fill_target(rows))
    rows.extend(skipped_rows(ctx))
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return Result(
        "misses",
        f"Misses: microseconds per miss, distinct keys, maxsize {MAXSIZE:,} evicting",
        rows,
        notes=[
            f"Python {python}; {repeats} interleaved repeats of {count:,} misses per system; "
            "ratios are medians of per-repeat ratios to the single-flight floor; gc disabled "
            "while timing.",
        ],
        targets=targets,
    )


def _rows(
    systems: list[Adapter], per_repeat: dict[str, list[float]], loader: str
) -> list[dict[str, Any]]:
    floor = per_repeat["single-flight"]
    rows = []
    for system in systems:
        values = per_repeat[system.name]
        ratio = median([v / f for v, f in zip(values, floor, strict=True) if f > 0])
        rows.append(
            {
                "system": system.name,
                "loader": loader,
                "x single-flight": ratio,
                "us/miss": round(median(values), 2),
                "note": system.note,
            }
        )
    return rows


def _target(rows: list[dict[str, Any]], loader: str) -> Target:
    mine = {row["system"]: row for row in rows if row.get("loader") == loader}
    ck = mine.get("cachekit")
    if sys.version_info >= (3, 12):
        name, want = f"miss ({loader}), Python 3.12+", "<= theine's cost per miss"
        theine = mine.get("theine")
        if ck is None or theine is None:
            return Target(name, want, "cachekit or theine not measured", None)
        value = (
            f"{fmt_ratio(ck['x single-flight'])} floor; theine "
            f"{fmt_ratio(theine['x single-flight'])}"
        )
        return Target(name, want, value, ck["x single-flight"] <= theine["x single-flight"])
    name, want = f"miss ({loader}), Python 3.11", f"<= {TARGET_311}x the single-flight floor"
    if ck is None:
        return Target(name, want, "cachekit not measured", None)
    value = f"{fmt_ratio(ck['x single-flight'])} floor ({ck['us/miss']} us)"
    return Target(name, want, value, ck["x single-flight"] <= TARGET_311)


def _fill_target(rows: list[dict[str, Any]]) -> Target:
    mine = {row["system"]: row for row in rows if row.get("loader") == FILL_LOADER}
    name, want = "fill insert", f"<= {TARGET_FILL}x cachebox's us/insert"
    ck, cachebox = mine.get("cachekit"), mine.get("cachebox")
    if ck is None or cachebox is None:
        return Target(name, want, "cachekit or cachebox not measured", None)
    ratio = ck["x single-flight"] / cachebox["x single-flight"]
    value = f"{ratio:.2f}x cachebox ({ck['us/miss']} against {cachebox['us/miss']} us)"
    return Target(name, want, value, ratio <= TARGET_FILL)
