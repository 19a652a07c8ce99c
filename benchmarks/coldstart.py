"""Cold start: thousands of distinct cold keys requested at once, with and without max_loads.

Measures, for an unbounded cache and for max_loads = 16, 64 and 256: the wall time until
every caller is answered, the loader's own peak concurrency (it must equal the bound), and
the p50/p99 latency seen by callers. Then the hit path with max_loads set, as a ratio to
the hit path without it (a hit never touches the limiter: the ratio should be ~1.0).

Run alone: python -m benchmarks.coldstart [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from typing import Any

from cachekit import async_cached

LOADER_SECONDS = 0.020


async def _burst(keys: int, max_loads: int | None) -> dict[str, Any]:
    running = peak = 0

    @async_cached(maxsize=None, max_loads=max_loads)
    async def load(key: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(LOADER_SECONDS)
        running -= 1
        return key

    latencies: list[float] = []

    async def caller(key: int) -> None:
        began = time.perf_counter()
        await load(key)
        latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(caller(k) for k in range(keys)))
    wall = time.perf_counter() - began
    latencies.sort()
    stats = load.cache_info()
    assert stats.loads_running == stats.loads_queued == 0
    return {
        "max_loads": "unbounded" if max_loads is None else max_loads,
        "keys": keys,
        "wall_s": round(wall, 3),
        "peak_upstream": peak,
        "bound_held": max_loads is None or peak == max_loads,
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99) - 1], 1),
        "loader_calls": stats.misses,
    }


async def _hit_ratio(repeats: int, calls: int) -> dict[str, Any]:
    @async_cached(ttl=60)
    async def plain(key: int) -> int:
        return key

    @async_cached(ttl=60, max_loads=16)
    async def limited(key: int) -> int:
        return key

    async def timed(fn: Any) -> float:
        began = time.perf_counter()
        for _ in range(calls):
            await fn(1)
        return (time.perf_counter() - began) / calls

    await plain(1)
    await limited(1)
    ratios, plain_ns = [], []
    gc.disable()
    try:
        for _ in range(repeats):
            a = await timed(plain)
            b = await timed(limited)
            ratios.append(b / a)
            plain_ns.append(a * 1e9)
    finally:
        gc.enable()
    return {
        "hit_ns_without": round(statistics.median(plain_ns), 1),
        "hit_ratio_with_max_loads": round(statistics.median(ratios), 3),
        "target": "<= 1.05",
    }


def run(*, quick: bool) -> list[dict[str, Any]]:
    """One row per bound, then one row comparing the hit path with and without max_loads."""
    keys = 1_000 if quick else 10_000

    async def main() -> list[dict[str, Any]]:
        rows = [await _burst(keys, bound) for bound in (None, 16, 64, 256)]
        rows.append(await _hit_ratio(7 if quick else 15, 20_000 if quick else 100_000))
        return rows

    return asyncio.run(main())


def steps_scenario(ctx: Any) -> int:
    """The progress steps run_scenario() takes: one, the whole measurement."""
    return 1


def run_scenario(ctx: Any) -> Any:
    """The harness entry (`python -m benchmarks --scenarios coldstart`)."""
    from .common import Result, Target

    rows = run(quick=ctx.quick)
    ctx.progress.step("coldstart")
    bursts, hit = rows[:-1], rows[-1]
    held = all(row["bound_held"] for row in bursts)
    ratio = float(hit["hit_ratio_with_max_loads"])
    targets = [
        Target("coldstart: peak upstream concurrency", "== max_loads", str(held), held),
        Target("coldstart: hit with max_loads", "<= 1.05x without", f"{ratio:.3f}x", ratio <= 1.05),
    ]
    title = "Cold start: distinct cold keys at once (loader sleeps 20 ms), with and without a bound"
    return Result("coldstart", title, [*bursts, hit], targets=targets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    rows = run(quick=parser.parse_args().quick)
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
