"""Shared pieces of the harness: the run context, results and targets, timing helpers.

Timing rules every scenario follows: `time.perf_counter`, the garbage collector disabled
while a timed loop runs, the cost of the bare `for` loop measured right after and subtracted,
systems interleaved within each repeat (rotating the order), and the result of a repeat taken
as a ratio to a floor measured in that same repeat. The reported figure is the median of those
per-repeat ratios; absolute times are printed beside it.
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from .adapters import Adapter, Cached


class FakeClock:
    """A clock the test moves by hand: `timer=clock` makes expiry deterministic."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Target:
    """One of issue 3's targets, with cachekit's figure and whether it is met."""

    name: str
    target: str
    value: str
    met: bool | None  # None: not measured in this run

    @property
    def verdict(self) -> str:
        return {True: "met", False: "missed", None: "n/a"}[self.met]


@dataclass
class Result:
    scenario: str
    title: str
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)


class Progress:
    """A thin wrapper so scenarios do not care whether a bar is shown.

    The total is fixed before the first scenario starts: each scenario module says how many
    steps it will take (its `steps(ctx)`), and run.py sums them. A scenario only steps.
    """

    def __init__(self, bar: Any | None) -> None:
        self._bar = bar
        self.done = 0  # steps taken so far, counted with or without a bar

    def step(self, label: str = "", n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            if label:
                self._bar.set_postfix_str(label, refresh=False)
            self._bar.update(n)

    def skip_to(self, done: int) -> None:
        """Advance to `done` steps: a scenario that skipped or failed leaves its share."""
        if done > self.done:
            self.step(n=done - self.done)


@dataclass
class Context:
    quick: bool
    systems: list[Adapter]  # available, floors first
    skipped: list[Adapter]  # requested but unavailable, with .skipped set
    progress: Progress
    seed: int = 20240611

    def system(self, name: str) -> Adapter | None:
        return next((a for a in self.systems if a.name == name), None)

    @property
    def peers(self) -> list[Adapter]:
        """Every non-floor system."""
        return [a for a in self.systems if not a.floor]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rotated(items: Sequence[Any], shift: int) -> list[Any]:
    """The same items, starting at a different one each repeat (interleaving)."""
    if not items:
        return []
    shift %= len(items)
    return [*items[shift:], *items[:shift]]


@contextmanager
def gc_paused(collect: bool = True) -> Iterator[None]:
    was_enabled = gc.isenabled()
    if collect:
        gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def ns_per_call(fn: Cached, keys: Sequence[int], rounds: int, collect: bool = True) -> float:
    """Nanoseconds per `await fn(key)` over `rounds` passes of `keys`, loop overhead removed."""
    with gc_paused(collect):
        began = time.perf_counter()
        for _ in range(rounds):
            for key in keys:
                await fn(key)
        spent = time.perf_counter() - began
        began = time.perf_counter()
        for _ in range(rounds):
            for _key in keys:
                pass
        empty = time.perf_counter() - began
    return max(spent - empty, 0.0) / (rounds * len(keys)) * 1e9


async def calibrate_rounds(
    fn: Cached, keys: Sequence[int], seconds: float, collect: bool = True
) -> int:
    """How many passes over `keys` take about `seconds` for this system (at least one)."""
    per_call = await ns_per_call(fn, keys, 1, collect)
    per_pass = max(per_call * len(keys) / 1e9, 1e-9)
    return max(1, round(seconds / per_pass))


def zipf_stream(keys: int, calls: int, s: float, seed: int) -> list[int]:
    """`calls` draws from a Zipf(s) law over `keys` keys (rank r has weight 1/r**s)."""
    rng = random.Random(seed)
    cumulative = list(accumulate(1.0 / (rank**s) for rank in range(1, keys + 1)))
    ranks = rng.choices(range(keys), cum_weights=cumulative, k=calls)
    # Scatter ranks over the key space so the hottest keys are not the smallest ints.
    permutation = list(range(keys))
    rng.shuffle(permutation)
    return [permutation[r] for r in ranks]


class LoopErrors:
    """Counts calls to the loop's exception handler ("never retrieved", "destroyed pending")."""

    def __init__(self) -> None:
        self.count = 0
        self.messages: list[str] = []

    def install(self) -> None:
        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            self.count += 1
            self.messages.append(str(context.get("message", "")))

        asyncio.get_running_loop().set_exception_handler(handler)


def fmt_ns(ns: float) -> str:
    if ns != ns:  # nan
        return "-"
    if ns >= 10_000:
        return f"{ns / 1000:,.1f} us"
    return f"{ns:,.0f} ns"


def fmt_ratio(x: float) -> str:
    if x != x:
        return "-"
    if x >= 100:
        return f"{x:,.0f}x"
    if x >= 10:
        return f"{x:.1f}x"
    return f"{x:.2f}x"


def skipped_rows(ctx: Context, first: str = "system") -> list[dict[str, Any]]:
    """One row per unavailable system, so a table never drops a peer silently."""
    return [{first: a.name, "note": f"skipped: {a.skipped}"} for a in ctx.skipped]
