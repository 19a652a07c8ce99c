"""Scenario 5, scale: does the hit path slow down as the cache holds more entries?

Each system is built twice, with maxsize 1,000 (small) and 1,000,000 (big; 20,000 in quick
mode), ttl=60, and filled to capacity through the decorated function. Then 1,000 held keys
(all of the small one's, a random spread of the big one's) are hit in a timed loop, small and
big alternating within each repeat, the `dict` memo holding the same sizes timed beside them.
growth = ns per hit (big) / ns per hit (small), the median over repeats; "x dict growth"
divides it by the dict memo's own growth in the same repeat (1.0 = grows like a dict);
"added ns" is the absolute difference, beside the dict memo's.
A system whose big fill would take too long (estimated from its small fill) is skipped with
the estimate, so the run stays within its time budget.

Target (issue 3): cachekit's growth no more than the dict memo's own growth.
"""

from __future__ import annotations

import gc
import random
import time
from typing import Any

from .adapters import Adapter, Cached, Options
from .common import (
    Context,
    Result,
    Target,
    calibrate_rounds,
    fmt_ratio,
    gc_paused,
    median,
    ns_per_call,
    skipped_rows,
)

SMALL = 1_000
SAMPLE = 1_000


class _Held:
    """A system's function filled to `size` entries, and its loader call counter."""

    def __init__(self) -> None:
        self.calls = 0
        self.fn: Cached | None = None
        self.cleanup: Any = None

    async def load(self, x: int) -> int:
        self.calls += 1
        return x + 1


async def _filled(system: Adapter, size: int) -> tuple[_Held, float]:
    held = _Held()
    held.fn, held.cleanup = system.build(held.load, Options(maxsize=size, ttl=60.0))
    with gc_paused(collect=False):  # collections over a growing heap would dominate the fill
        began = time.perf_counter()
        for key in range(size):
            await held.fn(key)
        return held, time.perf_counter() - began


def _systems(ctx: Context) -> list[Adapter]:
    return [s for s in ctx.systems if s.name not in ("bare", "dict")]


def steps(ctx: Context) -> int:
    """The progress steps run() takes: the dict floor's fills, then one per system."""
    return len(_systems(ctx)) + 1


async def run(ctx: Context) -> Result:
    big = 20_000 if ctx.quick else 1_000_000
    repeats = 3 if ctx.quick else 5
    fill_limit = 3.0 if ctx.quick else 20.0  # seconds a big fill may take
    budget = 0.02 if ctx.quick else 0.05
    rng = random.Random(ctx.seed)
    small_keys = list(range(SMALL))
    big_keys = rng.sample(range(big), SAMPLE)
    systems = _systems(ctx)

    dict_adapter = ctx.system("dict")
    assert dict_adapter is not None
    dict_small, _ = await _filled(dict_adapter, SMALL)
    dict_big, _ = await _filled(dict_adapter, big)
    ctx.progress.step("scale dict")
    rows: list[dict[str, Any]] = []
    dict_growths: list[float] = []
    for system in systems:
        small, small_fill = await _filled(system, SMALL)
        estimate = small_fill * big / SMALL
        if estimate > fill_limit:
            rows.append(
                {
                    "system": system.name,
                    "note": f"big fill skipped: ~{estimate:.0f} s estimated for {big:,} misses",
                }
            )
            ctx.progress.step(f"scale {system.name}")
            continue
        large, _ = await _filled(system, big)
        # Millions of live objects would make every collection slow: freeze them, so the
        # timed loops (gc disabled anyway) are not preceded by full-heap collections.
        gc.collect()
        gc.freeze()
        assert small.fn is not None and large.fn is not None and dict_small.fn is not None
        assert dict_big.fn is not None
        loads_before = small.calls + large.calls
        pairs = [
            (small.fn, small_keys),
            (large.fn, big_keys),
            (dict_small.fn, small_keys),
            (dict_big.fn, big_keys),
        ]
        rounds = [await calibrate_rounds(fn, keys, budget, False) for fn, keys in pairs]
        ns: list[list[float]] = [[], [], [], []]
        for r in range(repeats):
            order = [0, 1, 2, 3] if r % 2 == 0 else [3, 2, 1, 0]
            for i in order:
                fn, keys = pairs[i]
                ns[i].append(await ns_per_call(fn, keys, rounds[i], False))
        growth = [b / s for s, b in zip(ns[0], ns[1], strict=True)]
        d_growth = [b / s for s, b in zip(ns[2], ns[3], strict=True)]
        dict_growths.extend(d_growth)
        misses = small.calls + large.calls - loads_before
        rows.append(
            {
                "system": system.name,
                "ns/hit small": median(ns[0]),
                "ns/hit big": median(ns[1]),
                "growth x": median(growth),
                "dict growth x": median(d_growth),
                "x dict growth": median([g / d for g, d in zip(growth, d_growth, strict=True)]),
                "added ns": median(ns[1]) - median(ns[0]),
                "dict added ns": median(ns[3]) - median(ns[2]),
                "note": f"{misses:,} misses while timing (entries evicted)" if misses else "",
            }
        )
        if small.cleanup is not None:
            await small.cleanup()
        if large.cleanup is not None:
            await large.cleanup()
        del small, large
        gc.unfreeze()
        gc.collect()
        ctx.progress.step(f"scale {system.name}")
    rows.insert(
        0,
        {
            "system": "dict",
            "growth x": median(dict_growths),
            "dict growth x": median(dict_growths),
            "x dict growth": 1.0,
            "note": "all repeats of every system pooled",
        },
    )
    rows.extend(skipped_rows(ctx))
    return Result(
        "scale",
        f"Scale: hit latency with {SMALL:,} vs {big:,} entries held (ttl 60)",
        rows,
        notes=[
            f"{repeats} repeats per system, small/big/dict alternating; 1,000 distinct held keys "
            "hit per pass; growth = big / small; x dict growth = growth / dict's growth "
            "measured in the same repeat.",
        ],
        targets=[_target(rows)],
    )


def _target(rows: list[dict[str, Any]]) -> Target:
    name = "scale"
    want = "hit-cost growth <= dict's own growth"
    ck = next((r for r in rows if r["system"] == "cachekit"), None)
    if ck is None or "growth x" not in ck:
        return Target(name, want, "cachekit not measured", None)
    value = (
        f"growth {fmt_ratio(ck['growth x'])} vs dict {fmt_ratio(ck['dict growth x'])} "
        f"({fmt_ratio(ck['x dict growth'])}); +{ck['added ns']:.0f} ns vs dict "
        f"+{ck['dict added ns']:.0f} ns"
    )
    return Target(name, want, value, ck["x dict growth"] <= 1.0)
