"""Scenario 6, expiry: 1,000 callers arrive together on a key that has just expired.

The key is loaded once (ttl 60), then made to expire, then 1,000 tasks are gathered on it while
the loader takes 5 ms. Reported: loader calls after the first load (ideal 1), how many callers
were answered with the stale value, and how many got an error.

Expiring the key: systems that accept an injected clock (cachekit's `timer=`, cachetools'
`TTLCache(timer=)` under asyncache and cachetools-async) get a fake clock moved past the ttl, so
nothing sleeps. The others are built with a real ttl of 50 ms and the run sleeps 100 ms; the
"clock" column says which. The floors have no expiry and are left out.

Target (issue 3): cachekit makes exactly one loader call.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .adapters import Adapter, Options
from .common import Context, FakeClock, Result, Target, skipped_rows

CALLERS = 1_000
REAL_TTL = 0.05


async def _expire_and_stampede(system: Adapter) -> dict[str, Any]:
    version = 0

    async def load(x: int) -> int:
        nonlocal version
        version += 1
        mine = version
        await asyncio.sleep(0.005)
        return mine

    clock = FakeClock() if system.clock else None
    if clock is not None:
        fn, cleanup = system.build(load, Options(maxsize=100, ttl=60.0, timer=clock))
    else:
        fn, cleanup = system.build(load, Options(maxsize=100, ttl=REAL_TTL))
    first = await fn(1)
    if clock is not None:
        clock.advance(61.0)
    else:
        await asyncio.sleep(REAL_TTL * 2)
    loads_before = version

    async def caller() -> Any:
        return await fn(1)

    outcomes = await asyncio.gather(*(caller() for _ in range(CALLERS)), return_exceptions=True)
    if cleanup is not None:
        await cleanup()
    return {
        "system": system.name,
        "loader calls": version - loads_before,
        "stale answers": sum(1 for o in outcomes if o == first),
        "errors": sum(1 for o in outcomes if isinstance(o, BaseException)),
        "clock": "injected (fake)" if clock is not None else f"real ttl {REAL_TTL * 1e3:.0f} ms",
    }


def steps(ctx: Context) -> int:
    """The progress steps run() takes: one per system."""
    return len(ctx.peers)


async def run(ctx: Context) -> Result:
    systems = ctx.peers
    rows = []
    for system in systems:
        rows.append(await _expire_and_stampede(system))
        ctx.progress.step(f"expiry {system.name}")
    rows.extend(skipped_rows(ctx))
    return Result(
        "expiry",
        f"Expiry: {CALLERS:,} callers on a just-expired key (loader takes 5 ms)",
        rows,
        notes=["ideal: 1 loader call, 0 stale answers, 0 errors."],
        targets=[_target(rows)],
    )


def _target(rows: list[dict[str, Any]]) -> Target:
    name = "expiry"
    want = "exactly 1 loader call"
    ck = next((r for r in rows if r["system"] == "cachekit"), None)
    if ck is None:
        return Target(name, want, "cachekit not measured", None)
    value = f"{ck['loader calls']} loader call(s), {ck['stale answers']} stale answers"
    return Target(name, want, value, ck["loader calls"] == 1)
