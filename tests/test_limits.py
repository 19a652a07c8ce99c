"""Load control: max_loads queues flights in FIFO order, load_timeout cancels hung ones."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cachekit import AsyncCache, LoadLimiter, async_cached

from .conftest import FakeClock, Gate, assert_stats, settle


def assert_no_slot_leaked(*caches: AsyncCache[Any, Any]) -> None:
    for cache in caches:
        assert_stats(cache, loads_running=0, loads_queued=0)
        limiter = cache._limiter
        assert limiter is None or (limiter.running == 0 and not limiter._queue)


class Upstream:
    """A loader that records the order of starts and its own peak concurrency."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.running = 0
        self.peak = 0

    async def load(self, key: Any) -> str:
        self.started.append(key)
        self.running += 1
        self.peak = max(self.peak, self.running)
        for _ in range(3):  # stay in flight across a few loop iterations
            await asyncio.sleep(0)
        self.running -= 1
        return f"v{key}"


async def test_distinct_cold_keys_run_at_most_max_loads_at_once_in_fifo_order() -> None:
    upstream = Upstream()
    cache: AsyncCache[int, str] = AsyncCache(maxsize=None, max_loads=8)
    results = await asyncio.gather(
        *(cache.get_or_compute(k, lambda k=k: upstream.load(k)) for k in range(1000))
    )
    assert results == [f"v{k}" for k in range(1000)]
    assert upstream.peak == 8
    assert upstream.started == list(range(1000))
    assert_stats(cache, misses=1000, coalesced=0)
    assert_no_slot_leaked(cache)


async def test_callers_of_a_queued_key_join_its_queued_flight(clock: FakeClock) -> None:
    cache: AsyncCache[str, str] = AsyncCache(max_loads=1, timer=clock)
    first, second = Gate("a"), Gate("b")
    a = asyncio.create_task(cache.get_or_compute("a", first))
    await first.started.wait()
    bs = [asyncio.create_task(cache.get_or_compute("b", second)) for _ in range(5)]
    await settle()
    assert cache.loading() == {"a": "running", "b": "queued"}
    assert_stats(cache, misses=2, coalesced=4, loads_running=1, loads_queued=1)
    clock.tick(2.5)
    first.release.set()
    second.release.set()
    assert await a == "a"
    assert await asyncio.gather(*bs) == ["b"] * 5
    assert second.calls == 1
    assert cache.stats().queue_wait_seconds == 2.5
    assert cache.loading() == {}
    assert_no_slot_leaked(cache)


async def test_abandoned_queued_flight_never_runs_with_cancel_abandoned() -> None:
    cache: AsyncCache[str, str] = AsyncCache(max_loads=1, cancel_abandoned=True)
    first, queued = Gate("a"), Gate("b")
    a = asyncio.create_task(cache.get_or_compute("a", first))
    await first.started.wait()
    bs = [asyncio.create_task(cache.get_or_compute("b", queued)) for _ in range(2)]
    await settle()
    for b in bs:
        b.cancel()
    await settle()
    assert_stats(cache, loads_queued=0, loads_running=1)
    assert cache.loading() == {"a": "running"}
    first.release.set()
    assert await a == "a"
    fresh = Gate("c")
    fresh.release.set()
    assert await cache.get_or_compute("c", fresh) == "c"
    assert queued.calls == 0
    assert_no_slot_leaked(cache)


async def test_abandoned_queued_flight_keeps_its_place_without_cancel_abandoned() -> None:
    cache: AsyncCache[str, str] = AsyncCache(max_loads=1)
    first, queued = Gate("a"), Gate("b")
    a = asyncio.create_task(cache.get_or_compute("a", first))
    await first.started.wait()
    b = asyncio.create_task(cache.get_or_compute("b", queued))
    await settle()
    b.cancel()
    await settle()
    assert cache.loading() == {"a": "running", "b": "queued"}
    first.release.set()
    queued.release.set()
    await a
    await queued.started.wait()
    await settle()
    assert cache.get("b") == "b"
    assert_no_slot_leaked(cache)


async def test_hung_computation_times_out_for_every_waiter_and_frees_its_slot() -> None:
    cache: AsyncCache[str, str] = AsyncCache(max_loads=1, load_timeout=0.01)
    hung = Gate("never")
    callers = [asyncio.create_task(cache.get_or_compute("k", hung)) for _ in range(3)]
    results = await asyncio.gather(*callers, return_exceptions=True)
    for result in results:
        assert isinstance(result, TimeoutError)
        assert str(result) == "the computation of key 'k' exceeded load_timeout=0.01s"
    assert hung.calls == 1
    assert_stats(cache, load_timeouts=1, load_failures=1, misses=1, coalesced=2)
    assert_no_slot_leaked(cache)
    quick = Gate("ok")
    quick.release.set()
    assert await cache.get_or_compute("k", quick) == "ok"  # not cached: starts afresh


async def test_timeout_is_cached_only_as_negative_caching_says() -> None:
    cache: AsyncCache[str, str] = AsyncCache(load_timeout=0.01, negative_ttl=60)
    hung = Gate("never")
    with pytest.raises(TimeoutError):
        await cache.get_or_compute("k", hung)
    with pytest.raises(TimeoutError):
        await cache.get_or_compute("k", hung)
    assert hung.calls == 1


async def test_a_timeout_error_raised_by_the_computation_itself_is_not_a_load_timeout() -> None:
    cache: AsyncCache[str, str] = AsyncCache(load_timeout=60)

    async def compute() -> str:
        raise TimeoutError("upstream said so")

    with pytest.raises(TimeoutError, match=r"^upstream said so$"):
        await cache.get_or_compute("k", compute)
    assert_stats(cache, load_timeouts=0, load_failures=1)


async def test_queue_wait_does_not_count_against_load_timeout() -> None:
    # The slot is held by a cache without a timeout; the queued flight's limit is shorter
    # than its wait in the queue, and it still gets its full load_timeout once it starts.
    limiter = LoadLimiter(1)
    patient: AsyncCache[str, str] = AsyncCache(max_loads=limiter)
    strict: AsyncCache[str, str] = AsyncCache(max_loads=limiter, load_timeout=0.05)
    first, second = Gate("a"), Gate("b")
    a = asyncio.create_task(patient.get_or_compute("a", first))
    await first.started.wait()
    b = asyncio.create_task(strict.get_or_compute("b", second))
    await asyncio.sleep(0.08)
    assert strict.loading() == {"b": "queued"}
    first.release.set()
    second.release.set()
    assert (await a, await b) == ("a", "b")
    assert_no_slot_leaked(patient, strict)


async def test_shared_limiter_bounds_the_sum_of_two_caches() -> None:
    limiter = LoadLimiter(2)
    upstream = Upstream()
    one: AsyncCache[int, str] = AsyncCache(max_loads=limiter)
    two: AsyncCache[int, str] = AsyncCache(max_loads=limiter)
    await asyncio.gather(
        *(one.get_or_compute(k, lambda k=k: upstream.load(k)) for k in range(10)),
        *(two.get_or_compute(k, lambda k=k: upstream.load(k + 100)) for k in range(10)),
    )
    assert upstream.peak == 2
    assert len(upstream.started) == 20
    assert_no_slot_leaked(one, two)


async def test_invalidate_and_clear_while_flights_are_queued() -> None:
    cache: AsyncCache[str, str] = AsyncCache(max_loads=1)
    first, old, new, other = Gate("a"), Gate("b-old"), Gate("b-new"), Gate("c")
    a = asyncio.create_task(cache.get_or_compute("a", first))
    await first.started.wait()
    b_old = asyncio.create_task(cache.get_or_compute("b", old))
    c = asyncio.create_task(cache.get_or_compute("c", other))
    await settle()
    assert cache.invalidate("b") is True
    b_new = asyncio.create_task(cache.get_or_compute("b", new))
    await settle()
    cache.clear()
    assert cache.loading() == {}
    for gate in (first, old, new, other):
        gate.release.set()
    assert await asyncio.gather(a, b_old, c, b_new) == ["a", "b-old", "c", "b-new"]
    assert (old.calls, new.calls) == (1, 1)  # forgotten flights still answer their callers
    assert len(cache) == 0  # ...but store nothing
    assert_no_slot_leaked(cache)


async def test_caller_timeout_on_a_queued_key_cancels_only_that_caller() -> None:
    cache: AsyncCache[str, str] = AsyncCache(max_loads=1)
    first, queued = Gate("a"), Gate("b")
    a = asyncio.create_task(cache.get_or_compute("a", first))
    await first.started.wait()
    patient = asyncio.create_task(cache.get_or_compute("b", queued))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0):
            await cache.get_or_compute("b", queued)
    first.release.set()
    queued.release.set()
    assert (await a, await patient) == ("a", "b")
    assert_no_slot_leaked(cache)


async def test_decorator_takes_the_load_options() -> None:
    upstream = Upstream()

    @async_cached(max_loads=3, load_timeout=5)
    async def fetch(k: int) -> str:
        return await upstream.load(k)

    await asyncio.gather(*(fetch(k) for k in range(20)))
    assert upstream.peak == 3
    assert_no_slot_leaked(fetch.cache)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"max_loads": 0}, ValueError, r"^max_loads must be > 0 or None, got 0$"),
        ({"max_loads": -2}, ValueError, r"^max_loads must be > 0 or None, got -2$"),
        ({"max_loads": "8"}, TypeError, r"^max_loads must be an int > 0, a LoadLimiter or None"),
        ({"load_timeout": -1}, ValueError, r"^load_timeout must be >= 0 seconds or None, got -1$"),
        ({"load_timeout": 0}, ValueError, r"^load_timeout must be > 0 seconds or None, got 0$"),
    ],
)
def test_bad_load_options_fail_early(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        AsyncCache(**options)
    with pytest.raises(error, match=message):
        async_cached(**options)
