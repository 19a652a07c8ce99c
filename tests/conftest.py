"""Shared test tools: a fake clock, a loop-error trap, and a one-line stats assertion."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from cachekit import AsyncCache, CacheStats

# Everything any event loop reported to its exception handler during the current test:
# "Task exception was never retrieved", "Task was destroyed but it is pending", errors in
# callbacks. A test passes only if this stays empty.
LOOP_ERRORS: list[dict[str, Any]] = []


def _record(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    LOOP_ERRORS.append(context)


class _TrappingPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        loop.set_exception_handler(_record)
        return loop


asyncio.set_event_loop_policy(_TrappingPolicy())


@pytest.fixture(autouse=True)
def no_loop_errors() -> Iterator[None]:
    LOOP_ERRORS.clear()
    yield
    gc.collect()  # destroyed-but-pending tasks and unretrieved exceptions report on collection
    errors = [ctx.get("message", ctx) for ctx in LOOP_ERRORS]
    LOOP_ERRORS.clear()
    assert not errors, f"the event loop reported: {errors}"


class FakeClock:
    """A timer to inject: it only moves when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def assert_stats(cache: AsyncCache[Any, Any], **expected: int) -> None:
    """Assert the named counters exactly; the others are not checked."""
    stats: CacheStats = cache.stats()
    actual = {name: getattr(stats, name) for name in expected}
    assert actual == expected


class Gate:
    """A loader that blocks on an event, counting its calls: drives flights by hand."""

    def __init__(self, result: Any = "value", error: BaseException | None = None) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.calls = 0
        self.result = result
        self.error = error

    async def __call__(self) -> Any:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return self.result


async def settle() -> None:
    """Let every ready callback and task step run (a few loop iterations)."""
    for _ in range(5):
        await asyncio.sleep(0)
