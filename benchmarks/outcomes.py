"""Scenario 7, cancellation and failure: who gets what, not how fast.

Cancellation (3 callers on one cold key, the loader held by an event until released):
  - first cancelled: the first caller is cancelled after all three joined, then the loader is
    released. Reported: what the two others receive (value, CancelledError, an exception, or
    nothing within 1 s: "hang"), whether the loader itself was cancelled, and what a new caller
    gets afterwards.
  - all cancelled: every caller is cancelled, then the loader is released. Reported: whether
    the loader ran to completion, and whether the next call is answered without a new load
    (the result was stored).
Failure (the loader sleeps 5 ms, then raises ValueError):
  - 100 concurrent callers: how many loads they cause (ideal 1), how many get the ValueError.
  - failure cached: does an immediate next call load again, or re-raise a cached failure?
    cachekit is also shown with negative_ttl=5 on a fake clock: cached, then reloaded after 5 s.
"loop errors" counts calls to the event loop's exception handler during a system's cases
("exception was never retrieved", "Task was destroyed but it is pending", ...).
The floors have no coordination and are left out.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from .adapters import Adapter, Cached, Options
from .common import Context, FakeClock, LoopErrors, Result, skipped_rows

WAIT = 1.0  # seconds before a caller that received nothing is called "hang"


def _outcome(task: asyncio.Task[Any]) -> str:
    if not task.done():
        return "hang"
    if task.cancelled():
        return "CancelledError"
    exc = task.exception()
    if exc is not None:
        return type(exc).__name__
    return "value"


def _summary(outcomes: list[str]) -> str:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o] = counts.get(o, 0) + 1
    return ", ".join(f"{n}/{len(outcomes)} {o}" for o, n in counts.items())


class _Gated:
    """A loader held until `release()`; records whether it finished or was cancelled."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.calls = 0
        self.completed = 0
        self.cancelled = 0

    async def load(self, x: int) -> int:
        self.calls += 1
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.completed += 1
        return x + 1


async def _settle(tasks: list[asyncio.Task[Any]]) -> None:
    pending = [t for t in tasks if not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=WAIT)
    for t in tasks:
        if not t.done():
            t.cancel()


async def _call(fn: Cached, key: int) -> Any:
    return await fn(key)


async def _fresh_call(fn: Cached, key: int) -> tuple[str, asyncio.Task[Any]]:
    task = asyncio.ensure_future(_call(fn, key))
    await _settle([task])
    return _outcome(task), task


async def _first_cancelled(system: Adapter) -> dict[str, Any]:
    gated = _Gated()
    fn, cleanup = system.build(gated.load, Options(maxsize=100, ttl=60.0))
    tasks = [asyncio.ensure_future(_call(fn, 1)) for _ in range(3)]
    await asyncio.sleep(0.01)
    tasks[0].cancel()
    await asyncio.sleep(0.01)
    gated.gate.set()
    await _settle(tasks)
    others = _summary([_outcome(t) for t in tasks[1:]])
    calls_before = gated.calls
    after, _ = await _fresh_call(fn, 1)
    if after == "value":
        after = "value, loaded again" if gated.calls > calls_before else "value (cached)"
    await _settle_cleanup(cleanup)
    return {
        "loads": calls_before,
        "others when 1st cancelled": others,
        "loader": "cancelled" if gated.cancelled else "completed",
        "next caller gets": after,
    }


async def _all_cancelled(system: Adapter) -> dict[str, Any]:
    gated = _Gated()
    fn, cleanup = system.build(gated.load, Options(maxsize=100, ttl=60.0))
    tasks = [asyncio.ensure_future(_call(fn, 1)) for _ in range(3)]
    await asyncio.sleep(0.01)
    for t in tasks:
        t.cancel()
    await asyncio.sleep(0.01)
    gated.gate.set()
    await asyncio.sleep(0.02)
    if gated.cancelled:
        loader = "cancelled"
    elif gated.completed:
        loader = "completed"
    else:
        loader = "never finished"
    calls_before = gated.calls
    after, _ = await _fresh_call(fn, 1)
    if after == "value":
        stored = "yes" if gated.calls == calls_before else "no (loads again)"
    else:
        stored = f"next call: {after}"
    await _settle_cleanup(cleanup)
    return {"all cancelled: loader": loader, "result stored": stored}


async def _settle_cleanup(cleanup: Any) -> None:
    if cleanup is not None:
        await cleanup()


def steps_cancellation(ctx: Context) -> int:
    """The progress steps run_cancellation() takes: one per system."""
    return len(ctx.peers)


async def run_cancellation(ctx: Context) -> Result:
    systems = ctx.peers
    rows = []
    notes = [
        "Wanted: the others get the value, the shared loader is not cancelled while "
        "anyone waits, and no CancelledError reaches a caller that was not cancelled.",
        f"'hang' = no answer within {WAIT:g} s; loads = loader calls by the 3 callers.",
    ]
    for system in systems:
        errors = LoopErrors()
        errors.install()
        row: dict[str, Any] = {"system": system.name}
        row |= await _first_cancelled(system)
        row |= await _all_cancelled(system)
        await _flush_loop_errors()
        row["loop errors"] = errors.count
        rows.append(row)
        notes.extend(f"{system.name} loop error: {m}" for m in sorted(set(errors.messages)))
        ctx.progress.step(f"cancellation {system.name}")
    rows.extend(skipped_rows(ctx))
    return Result(
        "cancellation",
        "Cancellation: 3 callers on a cold key, the loader held until released",
        rows,
        notes=notes,
    )


async def _flush_loop_errors() -> None:
    """Let pending callbacks run and unreferenced futures be collected, so the loop reports."""
    for _ in range(3):
        await asyncio.sleep(0.01)
    gc.collect()
    await asyncio.sleep(0)


async def _failing(system: Adapter, options: Options, clock: FakeClock | None) -> dict[str, Any]:
    calls = 0

    async def load(x: int) -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.005)
        raise ValueError("upstream down")

    fn, cleanup = system.build(load, options)
    tasks = [asyncio.ensure_future(_call(fn, 1)) for _ in range(100)]
    await _settle(tasks)
    outcomes = [_outcome(t) for t in tasks]
    loads = calls
    after, _ = await _fresh_call(fn, 1)
    cached = after == "ValueError" and calls == loads
    if cached and clock is not None and options.negative_ttl is not None:
        clock.advance(options.negative_ttl + 1)
        before = calls
        await _fresh_call(fn, 1)
        cached_for = f"yes, reloaded after {options.negative_ttl:g} s" if calls > before else "yes"
    elif cached:
        cached_for = "yes"
    else:
        cached_for = "no" if calls > loads else f"no load, next call: {after}"
    await _settle_cleanup(cleanup)
    return {
        "loads by 100 callers": loads,
        "callers' outcomes": _summary(outcomes),
        "failure cached": cached_for,
    }


def _failure_variants(ctx: Context) -> list[tuple[str, Adapter, Options, FakeClock | None]]:
    variants: list[tuple[str, Adapter, Options, FakeClock | None]] = []
    for system in ctx.peers:
        variants.append((system.name, system, Options(maxsize=100, ttl=60.0), None))
        if system.name == "cachekit":
            clock = FakeClock()
            options = Options(maxsize=100, ttl=60.0, timer=clock, negative_ttl=5.0)
            variants.append(("cachekit (negative_ttl=5)", system, options, clock))
    return variants


def steps_failure(ctx: Context) -> int:
    """The progress steps run_failure() takes: one per variant."""
    return len(_failure_variants(ctx))


async def run_failure(ctx: Context) -> Result:
    variants = _failure_variants(ctx)
    rows = []
    notes = [
        "Wanted: 1 load, every caller gets the ValueError; failures cached only when asked "
        "(cachekit: negative_ttl), for that long.",
    ]
    for label, system, options, clock in variants:
        errors = LoopErrors()
        errors.install()
        row: dict[str, Any] = {"system": label}
        row |= await _failing(system, options, clock)
        await _flush_loop_errors()
        row["loop errors"] = errors.count
        rows.append(row)
        notes.extend(f"{label} loop error: {m}" for m in sorted(set(errors.messages)))
        ctx.progress.step(f"failure {label}")
    rows.extend(skipped_rows(ctx))
    return Result(
        "failure",
        "Failure: 100 concurrent callers of a loader that raises after 5 ms",
        rows,
        notes=notes,
    )
