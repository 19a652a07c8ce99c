"""Scenario 1, hit: nanoseconds per awaited call of a warm key (one int argument).

Each system is built with maxsize 10,000 and ttl=60 (then again with no ttl), warmed with one
call, and timed on `await fn(7)` in a loop sized to take a fixed time per system. Systems are
interleaved within each repeat; a repeat's figure is the system's ns per call divided by the
`dict` memo's ns per call in that same repeat. Reported: the median of those ratios, the ratio
to `bare` the same way, and the median absolute ns.

Target (issue 3): cachekit with ttl=60, LRU at most 2.5x the dict floor, and faster than
every peer in the same run. Two cachekit variants are measured beside it, for what their
options cost on a hit: `policy="tinylfu"`, and an `on_event` listener that does nothing.
"""

from __future__ import annotations

from typing import Any

from .adapters import Adapter, Options
from .common import (
    Context,
    Result,
    Target,
    calibrate_rounds,
    fmt_ns,
    fmt_ratio,
    median,
    ns_per_call,
    rotated,
    skipped_rows,
)

KEY = 7
TARGET = 2.5


async def _loader(x: int) -> int:
    return x + 1


def _cachekit_variant(**extra: Any) -> Any:
    def make(loader: Any, options: Options) -> tuple[Any, None]:
        from cachekit import async_cached

        @async_cached(ttl=options.ttl, maxsize=options.maxsize, **extra)
        async def fn(x: int) -> Any:
            return await loader(x)

        return fn, None

    return make


def _ignore(event: object) -> None:
    pass


def _variants(systems: list[Adapter]) -> list[Adapter]:
    if not any(system.name == "cachekit" for system in systems):
        return []
    return [
        Adapter(
            "cachekit (tinylfu)",
            None,
            (),
            _cachekit_variant(policy="tinylfu"),
            note='policy="tinylfu"',
        ),
        Adapter(
            "cachekit (on_event)",
            None,
            (),
            _cachekit_variant(on_event=_ignore),
            note="a listener that does nothing",
        ),
    ]


TTLS: list[float | None] = [60.0, None]


def _repeats(ctx: Context) -> int:
    return 5 if ctx.quick else 7


def steps(ctx: Context) -> int:
    """The progress steps run() takes: one per timed loop."""
    return len(TTLS) * _repeats(ctx) * (len(ctx.systems) + len(_variants(ctx.systems)))


async def run(ctx: Context) -> Result:
    repeats = _repeats(ctx)
    budget = 0.02 if ctx.quick else 0.08  # seconds per timed loop
    rows: list[dict[str, Any]] = []
    targets: list[Target] = []
    ttls = TTLS
    systems = [*ctx.systems, *_variants(ctx.systems)]
    for ttl in ttls:
        built: dict[str, Any] = {}
        cleanups = []
        rounds: dict[str, int] = {}
        for system in systems:
            fn, cleanup = system.build(_loader, Options(maxsize=10_000, ttl=ttl))
            await fn(KEY)
            built[system.name] = fn
            if cleanup is not None:
                cleanups.append(cleanup)
            rounds[system.name] = await calibrate_rounds(fn, [KEY] * 100, budget)
        per_repeat: dict[str, list[float]] = {s.name: [] for s in systems}
        for r in range(repeats):
            ns: dict[str, float] = {}
            for system in rotated(systems, r):
                ns[system.name] = await ns_per_call(
                    built[system.name], [KEY] * 100, rounds[system.name]
                )
                ctx.progress.step(f"hit ttl={ttl} {system.name}")
            for name, value in ns.items():
                per_repeat[name].append(value)
        for cleanup in cleanups:
            await cleanup()
        rows.extend(_rows(systems, per_repeat, ttl))
        ck = next((row for row in rows if row["system"] == "cachekit" and row["ttl"] == ttl), None)
        if ttl is not None:
            targets.append(_target(ck, rows, ttl))
    rows.extend(skipped_rows(ctx))
    return Result(
        "hit",
        "Hit: ns per awaited call of a warm key (maxsize 10,000)",
        rows,
        notes=[
            f"{repeats} interleaved repeats; ratios are medians of per-repeat ratios to the floor "
            "measured in the same repeat; loop overhead subtracted; gc disabled while timing.",
        ],
        targets=targets,
    )


def _rows(
    systems: list[Adapter], per_repeat: dict[str, list[float]], ttl: float | None
) -> list[dict[str, Any]]:
    dict_ns = per_repeat["dict"]
    bare_ns = per_repeat["bare"]
    rows = []
    for system in systems:
        values = per_repeat[system.name]
        x_dict = median([v / d for v, d in zip(values, dict_ns, strict=True) if d > 0])
        x_bare = median([v / b for v, b in zip(values, bare_ns, strict=True) if b > 0])
        rows.append(
            {
                "system": system.name,
                "ttl": ttl,
                "x dict": x_dict,
                "x bare": x_bare,
                "ns/hit": median(values),
                "note": system.note,
            }
        )
    return rows


def _target(ck: dict[str, Any] | None, rows: list[dict[str, Any]], ttl: float) -> Target:
    name = f"hit, ttl={ttl:g}, LRU"
    want = f"<= {TARGET}x dict, faster than every peer"
    if ck is None:
        return Target(name, want, "cachekit not measured", None)
    peers = [
        row
        for row in rows
        if row["ttl"] == ttl
        and row["system"] not in ("bare", "dict")
        and not row["system"].startswith("cachekit")
    ]
    fastest = min(peers, key=lambda row: row["x dict"], default=None)
    beats = fastest is None or ck["x dict"] < fastest["x dict"]
    value = f"{fmt_ratio(ck['x dict'])} dict ({fmt_ns(ck['ns/hit'])})"
    if fastest is not None:
        value += f"; fastest peer {fastest['system']} {fmt_ratio(fastest['x dict'])}"
    return Target(name, want, value, ck["x dict"] <= TARGET and beats)
