"""AsyncCache: key states, single flight, failures, cancellation, TTL, invalidation races."""

from __future__ import annotations

import asyncio
import gc
import traceback
from typing import Any

import cachetools
import pytest
from freezegun import freeze_time

from cachekit import AsyncCache
from cachekit._flights import Flight

from .conftest import FakeClock, Gate, assert_stats, settle

# ---------------------------------------------------------------- single flight


async def test_concurrent_callers_share_one_computation(clock: FakeClock) -> None:
    cache: AsyncCache[str, str] = AsyncCache(ttl=10, timer=clock)
    gate = Gate("v")
    callers = [asyncio.create_task(cache.get_or_compute("k", gate)) for _ in range(50)]
    await gate.started.wait()
    await settle()
    gate.release.set()
    assert await asyncio.gather(*callers) == ["v"] * 50
    assert gate.calls == 1
    assert_stats(cache, misses=1, coalesced=49, hits=0)
    assert await cache.get_or_compute("k", gate) == "v"
    assert_stats(cache, misses=1, coalesced=49, hits=1)


async def test_ten_thousand_callers_on_one_key_run_one_computation() -> None:
    cache: AsyncCache[str, int] = AsyncCache(ttl=60)
    gate = Gate(42)
    callers = [asyncio.create_task(cache.get_or_compute("hot", gate)) for _ in range(10_000)]
    await gate.started.wait()
    await settle()
    gate.release.set()
    results = await asyncio.gather(*callers)
    assert results == [42] * 10_000
    assert gate.calls == 1
    assert_stats(cache, misses=1, coalesced=9_999)


async def test_distinct_keys_run_their_own_computations() -> None:
    cache: AsyncCache[int, int] = AsyncCache()
    calls: list[int] = []

    async def compute(k: int) -> int:
        calls.append(k)
        return k * 10

    results = await asyncio.gather(
        *(cache.get_or_compute(k, lambda k=k: compute(k)) for k in (1, 2, 3, 1, 2))
    )
    assert results == [10, 20, 30, 10, 20]
    assert sorted(calls) == [1, 2, 3]


async def test_none_is_cached_like_any_other_value() -> None:
    cache: AsyncCache[str, None] = AsyncCache()
    gate = Gate(None)
    gate.release.set()
    assert await cache.get_or_compute("k", gate) is None
    assert await cache.get_or_compute("k", gate) is None
    assert gate.calls == 1
    assert "k" in cache
    assert cache.get("k", "default") is None


# ---------------------------------------------------------------- failures


async def test_failure_reaches_every_joiner_and_is_not_cached_by_default() -> None:
    cache: AsyncCache[str, str] = AsyncCache()
    gate = Gate(error=ValueError("boom"))
    callers = [asyncio.create_task(cache.get_or_compute("k", gate)) for _ in range(5)]
    await gate.started.wait()
    gate.release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, ValueError) and str(r) == "boom" for r in results)
    assert gate.calls == 1
    assert "k" not in cache
    with pytest.raises(ValueError, match=r"^boom$"):
        await cache.get_or_compute("k", gate)
    assert gate.calls == 2
    assert_stats(cache, misses=2, coalesced=4, load_failures=2, hits=0)


async def test_negative_ttl_caches_a_failure_until_it_expires(clock: FakeClock) -> None:
    cache: AsyncCache[str, str] = AsyncCache(ttl=60, negative_ttl=5, timer=clock)
    gate = Gate(error=KeyError("missing"))
    gate.release.set()
    for _ in range(3):
        with pytest.raises(KeyError):
            await cache.get_or_compute("k", gate)
    assert gate.calls == 1
    assert cache.get("k", "default") == "default"  # get() never returns a failure
    assert "k" in cache
    clock.tick(5)
    assert "k" not in cache
    with pytest.raises(KeyError):
        await cache.get_or_compute("k", gate)
    assert gate.calls == 2
    assert_stats(cache, misses=2, hits=2, load_failures=2, expirations=1)


async def test_only_listed_exceptions_are_cached(clock: FakeClock) -> None:
    cache: AsyncCache[str, str] = AsyncCache(
        negative_ttl=5, negative_exceptions=(LookupError,), timer=clock
    )
    lookup, value = Gate(error=KeyError("a")), Gate(error=ValueError("b"))
    lookup.release.set()
    value.release.set()
    for _ in range(2):
        with pytest.raises(KeyError):
            await cache.get_or_compute("lookup", lookup)
        with pytest.raises(ValueError):
            await cache.get_or_compute("value", value)
    assert (lookup.calls, value.calls) == (1, 2)


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3)])
async def test_base_exceptions_are_never_cached(error: BaseException) -> None:
    # A task that raises KeyboardInterrupt also re-raises it out of the event loop, which
    # would stop the test run; so land the outcome by hand, as the flight's task would.
    cache: AsyncCache[str, str] = AsyncCache(negative_ttl=60, negative_exceptions=(BaseException,))
    loop = asyncio.get_running_loop()
    flight = Flight("k", loop)
    cache._flights["k"] = flight
    waiter = flight.add_waiter(loop)
    cache._loads_running += 1  # as _start would have counted it
    cache._land(flight, None, error, None)
    await settle()
    assert waiter.exception() is error  # the waiter gets it, the cache keeps nothing
    assert "k" not in cache
    assert_stats(cache, load_failures=1, currsize=0)


async def test_cached_failure_traceback_does_not_grow_on_hits(clock: FakeClock) -> None:
    cache: AsyncCache[str, str] = AsyncCache(negative_ttl=60, timer=clock)
    gate = Gate(error=RuntimeError("down"))
    gate.release.set()
    depths = []
    for _ in range(20):
        try:
            await cache.get_or_compute("k", gate)
        except RuntimeError as exc:
            depths.append(len(traceback.extract_tb(exc.__traceback__)))
    assert gate.calls == 1
    assert len(set(depths[1:])) == 1, depths


# ---------------------------------------------------------------- cancellation


async def test_cancelling_the_first_caller_neither_cancels_nor_hangs_the_joiners() -> None:
    cache: AsyncCache[str, str] = AsyncCache()
    gate = Gate("v")
    first = asyncio.create_task(cache.get_or_compute("k", gate))
    await gate.started.wait()
    others = [asyncio.create_task(cache.get_or_compute("k", gate)) for _ in range(3)]
    await settle()
    first.cancel()
    await settle()
    assert first.cancelled()
    gate.release.set()
    assert await asyncio.gather(*others) == ["v"] * 3
    assert gate.calls == 1


async def test_all_waiters_cancelled_flight_goes_on_and_is_stored() -> None:
    cache: AsyncCache[str, str] = AsyncCache()
    gate = Gate("v")
    callers = [asyncio.create_task(cache.get_or_compute("k", gate)) for _ in range(3)]
    await gate.started.wait()
    for c in callers:
        c.cancel()
    await settle()
    assert all(c.cancelled() for c in callers)
    gate.release.set()
    await settle()
    assert cache.get("k") == "v"
    assert await cache.get_or_compute("k", gate) == "v"
    assert gate.calls == 1


async def test_cancel_abandoned_cancels_the_flight_and_stores_nothing() -> None:
    cache: AsyncCache[str, str] = AsyncCache(cancel_abandoned=True)
    cancelled = asyncio.Event()

    async def compute() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    callers = [asyncio.create_task(cache.get_or_compute("k", compute)) for _ in range(3)]
    await settle()
    callers[0].cancel()
    await settle()
    assert not cancelled.is_set()  # two waiters remain
    callers[1].cancel()
    callers[2].cancel()
    await cancelled.wait()
    await settle()
    assert "k" not in cache
    assert cache._flights == {}
    gate = Gate("fresh")
    gate.release.set()
    assert await cache.get_or_compute("k", gate) == "fresh"


async def test_cancelled_error_never_reaches_a_later_uncancelled_caller() -> None:
    cache: AsyncCache[str, str] = AsyncCache(negative_ttl=60, negative_exceptions=(BaseException,))
    attempts = 0

    async def compute() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise asyncio.CancelledError  # the computation cancels itself once
        return "ok"

    # The waiter of the cancelled flight starts over instead of seeing CancelledError.
    assert await cache.get_or_compute("k", compute) == "ok"
    assert await cache.get_or_compute("k", compute) == "ok"
    assert attempts == 2


async def test_a_computation_that_always_cancels_itself_gives_up_loudly() -> None:
    cache: AsyncCache[str, str] = AsyncCache()

    async def compute() -> str:
        raise asyncio.CancelledError

    with pytest.raises(RuntimeError, match="was cancelled twice"):
        await cache.get_or_compute("k", compute)


async def test_caller_timeout_cancels_only_that_caller() -> None:
    cache: AsyncCache[str, str] = AsyncCache()
    gate = Gate("v")
    patient = asyncio.create_task(cache.get_or_compute("k", gate))
    await gate.started.wait()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0):
            await cache.get_or_compute("k", gate)
    gate.release.set()
    assert await patient == "v"


# ---------------------------------------------------------------- TTL and expiry


async def test_ttl_counts_from_landing_on_the_cache_timer(clock: FakeClock) -> None:
    cache: AsyncCache[str, int] = AsyncCache(ttl=10, timer=clock)
    gate = Gate(1)
    task = asyncio.create_task(cache.get_or_compute("k", gate))
    await gate.started.wait()
    clock.tick(7)  # the computation takes 7 s; the ttl starts when it lands
    gate.release.set()
    await task
    clock.tick(9.9)
    assert "k" in cache
    clock.tick(0.1)
    assert "k" not in cache
    assert cache.get("k") is None


async def test_expired_key_is_recomputed_by_one_flight(clock: FakeClock) -> None:
    cache: AsyncCache[str, int] = AsyncCache(ttl=10, timer=clock)
    cache.set("k", 1)
    clock.tick(10)
    gate = Gate(2)
    callers = [asyncio.create_task(cache.get_or_compute("k", gate)) for _ in range(1000)]
    await gate.started.wait()
    gate.release.set()
    assert await asyncio.gather(*callers) == [2] * 1000
    assert gate.calls == 1
    assert_stats(cache, misses=1, coalesced=999, expirations=1)


async def test_ttl_under_freezegun_follows_the_default_clock() -> None:
    with freeze_time("2026-01-01 00:00:00", real_asyncio=True) as frozen:
        cache: AsyncCache[str, str] = AsyncCache(ttl=30)
        gate = Gate("v")
        gate.release.set()
        await cache.get_or_compute("k", gate)
        frozen.tick(29)
        assert await cache.get_or_compute("k", gate) == "v"
        assert gate.calls == 1
        frozen.tick(1)
        assert "k" not in cache
        await cache.get_or_compute("k", gate)
        assert gate.calls == 2


async def test_ttl_zero_keeps_nothing_but_still_coalesces() -> None:
    cache: AsyncCache[str, str] = AsyncCache(ttl=0)
    gate = Gate("v")
    callers = [asyncio.create_task(cache.get_or_compute("k", gate)) for _ in range(4)]
    await gate.started.wait()
    gate.release.set()
    assert await asyncio.gather(*callers) == ["v"] * 4
    assert len(cache) == 0
    await cache.get_or_compute("k", gate)
    assert gate.calls == 2


async def test_expired_entries_are_reclaimed_without_being_read(clock: FakeClock) -> None:
    cache: AsyncCache[int, int] = AsyncCache(maxsize=None, ttl=1, timer=clock)
    for round_ in range(50):
        for i in range(100):
            cache.set(round_ * 100 + i, i)
        clock.tick(1)
    # Every round expired before the next was written; nobody read the old keys.
    assert len(cache) <= 100 + 32
    assert len(cache._expiry) <= 2 * (100 + 32)
    assert cache.stats().expirations >= 4800


# ---------------------------------------------------------------- invalidation races


async def test_invalidate_during_flight_answers_waiters_but_stores_nothing() -> None:
    cache: AsyncCache[str, str] = AsyncCache()
    old = Gate("old")
    waiter = asyncio.create_task(cache.get_or_compute("k", old))
    await old.started.wait()
    assert cache.invalidate("k") is True
    new = Gate("new")
    newer = asyncio.create_task(cache.get_or_compute("k", new))
    await new.started.wait()
    old.release.set()
    assert await waiter == "old"
    assert "k" not in cache  # the old flight's value never resurrects the key
    new.release.set()
    assert await newer == "new"
    assert cache.get("k") == "new"


async def test_late_failure_of_invalidated_flight_keeps_the_newer_entry() -> None:
    cache: AsyncCache[str, str] = AsyncCache(negative_ttl=60)
    old = Gate(error=RuntimeError("late"))
    stale = asyncio.create_task(cache.get_or_compute("k", old))
    await old.started.wait()
    cache.invalidate("k")
    fresh = Gate("good")
    fresh.release.set()
    assert await cache.get_or_compute("k", fresh) == "good"
    old.release.set()
    with pytest.raises(RuntimeError):
        await stale
    assert cache.get("k") == "good"


async def test_clear_forgets_flights_and_entries() -> None:
    cache: AsyncCache[str, str] = AsyncCache()
    cache.set("a", "1")
    gate = Gate("b")
    task = asyncio.create_task(cache.get_or_compute("b", gate))
    await gate.started.wait()
    cache.clear()
    assert len(cache) == 0
    gate.release.set()
    assert await task == "b"
    assert "b" not in cache
    assert cache.invalidate("a") is False


async def test_set_replaces_and_forgets_the_flight(clock: FakeClock) -> None:
    cache: AsyncCache[str, str] = AsyncCache(ttl=10, timer=clock)
    gate = Gate("computed")
    task = asyncio.create_task(cache.get_or_compute("k", gate))
    await gate.started.wait()
    cache.set("k", "written", ttl=3)
    gate.release.set()
    assert await task == "computed"
    assert cache.get("k") == "written"
    clock.tick(3)
    assert cache.get("k") is None


# ---------------------------------------------------------------- eviction order


async def _fill(cache: AsyncCache[int, int], keys: list[int]) -> None:
    for k in keys:
        await cache.get_or_compute(k, lambda k=k: _value(k))


async def _value(k: int) -> int:
    return k


async def test_lru_hit_protects_a_key_from_eviction() -> None:
    cache: AsyncCache[int, int] = AsyncCache(maxsize=3, policy="lru")
    await _fill(cache, [1, 2, 3])
    await cache.get_or_compute(1, lambda: _value(1))  # hit: 1 is now most recent
    await _fill(cache, [4])
    assert [k for k in (1, 2, 3, 4) if k in cache] == [1, 3, 4]
    assert_stats(cache, evictions=1, hits=1)


async def test_lfu_evicts_the_least_used_key() -> None:
    cache: AsyncCache[int, int] = AsyncCache(maxsize=3, policy="lfu")
    await _fill(cache, [1, 2, 3])
    for _ in range(3):
        await _fill(cache, [1, 3])
    await _fill(cache, [4])
    assert [k for k in (1, 2, 3, 4) if k in cache] == [1, 3, 4]


async def test_fifo_ignores_hits() -> None:
    cache: AsyncCache[int, int] = AsyncCache(maxsize=3, policy="fifo")
    await _fill(cache, [1, 2, 3, 1, 1])
    await _fill(cache, [4])
    assert [k for k in (1, 2, 3, 4) if k in cache] == [2, 3, 4]


async def test_rr_keeps_the_size_bound() -> None:
    cache: AsyncCache[int, int] = AsyncCache(maxsize=3, policy="rr")
    await _fill(cache, list(range(10)))
    assert len(cache) == 3
    assert_stats(cache, evictions=7)


async def test_batched_hits_replay_in_order_past_the_drain_threshold() -> None:
    cache: AsyncCache[int, int] = AsyncCache(maxsize=3, policy="lru")
    await _fill(cache, [1, 2, 3])
    for _ in range(700):  # crosses the buffer's drain threshold once, mid-sequence
        await _fill(cache, [2, 1])
    await _fill(cache, [4])
    assert [k for k in (1, 2, 3, 4) if k in cache] == [1, 2, 4]
    assert_stats(cache, hits=1400, misses=4)


async def test_user_store_is_used_with_its_getsizeof() -> None:
    store: cachetools.LRUCache[Any, Any] = cachetools.LRUCache(maxsize=10, getsizeof=len)
    cache: AsyncCache[str, str] = AsyncCache(store=store)
    cache.set("a", "xxxx")
    cache.set("b", "yyyy")
    cache.set("c", "zzzz")  # 12 > 10: "a" goes
    assert ("a" in cache, "b" in cache, "c" in cache) == (False, True, True)
    cache.set("big", "x" * 11)  # larger than the store: not kept
    assert "big" not in cache
    assert store.currsize == 8


# ---------------------------------------------------------------- sync API


async def test_get_set_contains_len(clock: FakeClock) -> None:
    cache: AsyncCache[str, int] = AsyncCache(ttl=5, timer=clock)
    assert cache.get("k") is None
    assert cache.get("k", -1) == -1
    cache.set("k", 1)
    assert cache.get("k") == 1
    assert "k" in cache
    assert len(cache) == 1
    cache.set("k", 2, ttl=100)
    clock.tick(50)
    assert cache.get("k") == 2
    assert cache.invalidate("k") is True
    assert cache.invalidate("k") is False
    assert len(cache) == 0


def test_stats_snapshot_is_frozen() -> None:
    cache: AsyncCache[str, int] = AsyncCache(maxsize=7)
    stats = cache.stats()
    with pytest.raises(AttributeError):
        stats.hits = 3  # type: ignore[misc]
    assert stats.maxsize == 7
    assert stats.hit_ratio == 0.0
    assert AsyncCache(maxsize=None).stats().maxsize is None


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"ttl": -1}, ValueError, r"^ttl must be >= 0 seconds or None, got -1$"),
        (
            {"ttl": "60"},
            TypeError,
            r"^ttl must be a number of seconds, a timedelta or None, got '60'$",
        ),
        ({"negative_ttl": -0.5}, ValueError, r"^negative_ttl must be >= 0 seconds"),
        ({"maxsize": 0}, ValueError, r"^maxsize must be > 0 or None, got 0$"),
        ({"maxsize": -3}, ValueError, r"^maxsize must be > 0 or None, got -3$"),
        ({"maxsize": 1.5}, TypeError, r"^maxsize must be an int > 0 or None, got 1.5$"),
        ({"policy": "mru"}, ValueError, r"^policy must be one of .*, got 'mru'$"),
        ({"negative_exceptions": (int,)}, TypeError, r"^negative_exceptions must be a tuple"),
        ({"timer": 3}, TypeError, r"^timer must be a zero-argument callable or None, got 3$"),
        ({"store": {}}, TypeError, r"^store must be a cachetools.Cache instance, got \{\}$"),
    ],
)
def test_bad_configuration_fails_early(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        AsyncCache(**options)


def test_store_excludes_maxsize_and_cannot_back_two_caches() -> None:
    store: cachetools.LRUCache[Any, Any] = cachetools.LRUCache(maxsize=5)
    with pytest.raises(ValueError, match=r"^pass either store= or maxsize=/policy=, not both$"):
        AsyncCache(store=store, maxsize=5)
    AsyncCache(store=store)
    with pytest.raises(ValueError, match=r"^store is already used by another AsyncCache"):
        AsyncCache(store=store)


async def test_unhashable_key_names_its_type() -> None:
    cache: AsyncCache[Any, int] = AsyncCache()
    with pytest.raises(TypeError, match=r"argument of type 'list'"):
        await cache.get_or_compute(["a"], lambda: _value(1))


async def test_compute_must_be_a_callable_returning_an_awaitable() -> None:
    cache: AsyncCache[str, int] = AsyncCache()
    with pytest.raises(TypeError, match=r"^compute must be a zero-argument callable, got 3$"):
        await cache.get_or_compute("k", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^compute\(\) must return an awaitable, got 4$"):
        await cache.get_or_compute("k", lambda: 4)  # type: ignore[arg-type,return-value]
    assert "k" not in cache


async def test_evicted_values_are_not_kept_alive_by_their_expiry() -> None:
    import weakref

    from cachekit._cache import _COMPACT_SLACK

    class Value:
        pass

    alive: weakref.WeakSet[Value] = weakref.WeakSet()
    cache: AsyncCache[int, Value] = AsyncCache(maxsize=100, ttl=3600)

    async def load() -> Value:
        value = Value()
        alive.add(value)
        return value

    for key in range(20_000):  # every call a miss, every insert past 100 an eviction
        await cache.get_or_compute(key, load)
    gc.collect()
    assert len(cache) == 100
    assert len(alive) <= 2 * 100 + _COMPACT_SLACK + 1  # not 20,000: evicted values are freed


@pytest.mark.parametrize("suspends", [False, True])
async def test_a_landed_flight_leaves_no_reference_cycle(suspends: bool) -> None:
    """A miss is freed by reference counting: no Flight waits for the garbage collector."""
    cache: AsyncCache[int, int] = AsyncCache(maxsize=10)

    async def load(key: int) -> int:
        if suspends:
            await asyncio.sleep(0)
        return key

    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for key in range(50):
            assert await cache.get_or_compute(key, lambda key=key: load(key)) == key
        await asyncio.sleep(0)
        gc.collect()
        cyclic = [type(found).__name__ for found in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert "Flight" not in cyclic


@pytest.mark.parametrize("suspends", [False, True])
async def test_the_leader_gets_the_computations_own_exception(suspends: bool) -> None:
    """Whether the computation fails in its first step (on 3.12 the leader then takes the
    outcome from the flight, with no future) or after waiting, the caller that led it gets
    the very exception raised, as every joined caller does, and a value the same way."""
    cache: AsyncCache[str, str] = AsyncCache(maxsize=10)
    boom = ValueError("boom")

    async def fail() -> str:
        if suspends:
            await asyncio.sleep(0)
        raise boom

    async def value() -> str:
        if suspends:
            await asyncio.sleep(0)
        return "v"

    with pytest.raises(ValueError) as raised:
        await cache.get_or_compute("k", fail)
    assert raised.value is boom
    assert await cache.get_or_compute("k", value) == "v"
    assert cache.stats().misses == 2 and cache.stats().load_failures == 1
