"""The on_event listener: what it hears, in order, and that it can never break a caller."""

from __future__ import annotations

import asyncio
import logging

import pytest

from cachekit import AsyncCache, CacheEvent, async_cached

from .conftest import FakeClock, Gate, settle


class Recorder:
    def __init__(self) -> None:
        self.events: list[CacheEvent] = []

    def __call__(self, event: CacheEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[tuple[str, object]]:
        seen = [(e.kind, e.key) for e in self.events]
        self.events.clear()
        return seen


async def test_each_transition_is_heard_as_it_happens(clock: FakeClock) -> None:
    heard = Recorder()
    cache: AsyncCache[str, str] = AsyncCache(maxsize=1, ttl=10, timer=clock, on_event=heard)
    gate = Gate("a")
    first = asyncio.create_task(cache.get_or_compute("a", gate))
    second = asyncio.create_task(cache.get_or_compute("a", gate))
    await settle()
    assert heard.kinds() == [("miss", "a"), ("coalesced", "a")]
    clock.tick(2)
    gate.release.set()
    assert await first == await second == "a"
    [landed] = heard.events
    assert (landed.kind, landed.key, landed.duration, landed.error) == (
        "load_success",
        "a",
        2,
        None,
    )
    heard.kinds()
    assert await cache.get_or_compute("a", gate) == "a"
    assert heard.kinds() == [("hit", "a")]  # at once, not batched
    assert cache.get("a") == "a"
    assert heard.kinds() == [("hit", "a")]
    cache.set("b", "b")  # room for one: "a" goes
    assert heard.kinds() == [("eviction", "a")]
    clock.tick(11)

    async def b2() -> str:
        return "b2"

    assert await cache.get_or_compute("b", b2) == "b2"
    assert heard.kinds()[:2] == [("expiration", "b"), ("miss", "b")]
    assert cache.invalidate("b") is True
    assert heard.kinds() == [("invalidation", "b")]
    assert cache.invalidate("b") is False
    assert heard.kinds() == []  # nothing was there: nothing heard


async def test_failures_and_stale_hits_and_refreshes_are_heard(clock: FakeClock) -> None:
    heard = Recorder()
    cache: AsyncCache[str, str] = AsyncCache(ttl=10, stale_ttl=10, timer=clock, on_event=heard)
    boom = ValueError("boom")

    async def fail() -> str:
        raise boom

    with pytest.raises(ValueError):
        await cache.get_or_compute("x", fail)
    assert [(e.kind, e.error) for e in heard.events] == [("miss", None), ("load_failure", boom)]
    heard.kinds()
    cache.set("k", "old")
    clock.tick(12)

    async def new() -> str:
        return "new"

    assert await cache.get_or_compute("k", new) == "old"
    await settle()
    assert heard.kinds() == [
        ("stale_hit", "k"),
        ("refresh", "k"),
        ("hit", "k"),
        ("load_success", "k"),
    ]


async def test_clear_is_heard_once_per_key(clock: FakeClock) -> None:
    heard = Recorder()
    cache: AsyncCache[str, str] = AsyncCache(timer=clock, on_event=heard)
    cache.set("a", "1")
    cache.set("b", "2")
    gate = Gate()
    task = asyncio.create_task(cache.get_or_compute("c", gate))
    await settle()
    heard.kinds()
    cache.clear()
    assert sorted(heard.kinds()) == [
        ("invalidation", "a"),
        ("invalidation", "b"),
        ("invalidation", "c"),
    ]
    gate.release.set()
    assert await task == "value"


async def test_a_failing_listener_is_logged_once_and_never_breaks_a_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    def broken(event: CacheEvent) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("listener bug")

    cache: AsyncCache[str, int] = AsyncCache(on_event=broken)

    async def one() -> int:
        return 1

    with caplog.at_level(logging.ERROR, logger="cachekit"):
        for _ in range(3):
            assert await cache.get_or_compute("k", one) == 1
    assert calls == 4  # miss, load_success, hit, hit: each still delivered
    [record] = caplog.records
    assert "on_event listener" in record.getMessage()
    assert record.exc_info is not None and "listener bug" in str(record.exc_info[1])


async def test_a_listener_may_call_back_into_the_cache() -> None:
    sizes: list[int] = []
    cache: AsyncCache[str, int]

    def listener(event: CacheEvent) -> None:
        sizes.append(cache.stats().currsize)  # would deadlock if called under the lock

    cache = AsyncCache(on_event=listener)

    async def one() -> int:
        return 1

    await cache.get_or_compute("k", one)
    assert sizes == [0, 1]


async def test_the_decorator_hears_every_hit(clock: FakeClock) -> None:
    heard = Recorder()

    @async_cached(ttl=10, timer=clock, on_event=heard)
    async def double(x: int) -> int:
        return 2 * x

    @async_cached(ttl=10, timer=clock, on_event=heard)
    async def variadic(*xs: int) -> int:
        return sum(xs)

    assert [await double(1) for _ in range(3)] == [2, 2, 2]
    assert [kind for kind, _ in heard.kinds()] == ["miss", "load_success", "hit", "hit"]
    assert [await variadic(1, 2) for _ in range(2)] == [3, 3]
    assert [kind for kind, _ in heard.kinds()] == ["miss", "load_success", "hit"]


def test_on_event_must_be_callable() -> None:
    with pytest.raises(
        TypeError, match=r"^on_event must be a callable taking a CacheEvent, got 5$"
    ):
        AsyncCache(on_event=5)  # type: ignore[arg-type]
