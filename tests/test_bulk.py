"""get_many: the DataLoader pattern, each key loaded at most once however callers overlap."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from cachekit import AsyncCache, LoadLimiter, LoadTimeoutError, async_cached_many

from .conftest import FakeClock, assert_stats, settle


class BulkLoader:
    """compute_many: records each call's keys; can be held on a gate, fail, or skip keys."""

    def __init__(self, skip: frozenset[int] = frozenset()) -> None:
        self.calls: list[list[int]] = []
        self.gate: asyncio.Event | None = None
        self.error: Exception | None = None
        self.skip = skip

    async def __call__(self, keys: list[int]) -> Mapping[int, str]:
        self.calls.append(list(keys))
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return {key: f"v{key}" for key in keys if key not in self.skip}


async def test_missing_keys_are_loaded_by_one_call_in_the_callers_order() -> None:
    cache: AsyncCache[int, str] = AsyncCache()
    cache.set(2, "cached")
    load = BulkLoader()
    assert await cache.get_many([3, 2, 1, 3], load) == {3: "v3", 2: "cached", 1: "v1"}
    assert list(await cache.get_many([1, 3, 2], load)) == [1, 3, 2]
    assert load.calls == [[3, 1]]
    assert_stats(cache, misses=2, hits=4, load_count=1)


async def test_overlapping_concurrent_key_sets_load_each_key_once() -> None:
    cache: AsyncCache[int, str] = AsyncCache()
    load = BulkLoader()
    load.gate = asyncio.Event()
    first = asyncio.create_task(cache.get_many([1, 2, 3], load))
    await settle()
    second = asyncio.create_task(cache.get_many([2, 3, 4], load))
    single = asyncio.create_task(cache.get_or_compute(1, lambda: load([1])))
    await settle()
    assert load.calls == [[1, 2, 3], [4]]  # 2 and 3 joined the first load, 1 too
    assert not first.done() and not second.done() and not single.done()
    load.gate.set()
    assert await first == {1: "v1", 2: "v2", 3: "v3"}
    assert await second == {2: "v2", 3: "v3", 4: "v4"}
    assert await single == "v1"
    assert load.calls == [[1, 2, 3], [4]]
    assert_stats(cache, misses=4, coalesced=3, load_count=2, currsize=4)


async def test_a_key_missing_from_the_result_fails_with_key_error(clock: FakeClock) -> None:
    cache: AsyncCache[int, str] = AsyncCache(negative_ttl=5, timer=clock)
    load = BulkLoader(skip=frozenset({2}))
    with pytest.raises(KeyError, match=r"compute_many\(\) returned no value for 2"):
        await cache.get_many([1, 2], load)
    assert await cache.get_or_compute(1, lambda: load([1])) == "v1"  # 1 was stored
    with pytest.raises(KeyError):  # 2's failure is negatively cached: nothing reloads it
        await cache.get_many([2], load)
    assert load.calls == [[1, 2]]
    clock.tick(5)
    with pytest.raises(KeyError):
        await cache.get_many([2], load)
    assert load.calls == [[1, 2], [2]]


async def test_a_failing_bulk_load_fails_every_caller_of_its_keys() -> None:
    cache: AsyncCache[int, str] = AsyncCache()
    load = BulkLoader()
    load.gate, load.error = asyncio.Event(), ConnectionError("down")
    bulk = asyncio.create_task(cache.get_many([1, 2], load))
    await settle()
    joiners = [asyncio.create_task(cache.get_or_compute(k, lambda: load([0]))) for k in (1, 2)]
    await settle()
    load.gate.set()
    for task in (bulk, *joiners):
        with pytest.raises(ConnectionError, match="down"):
            await task
    assert load.calls == [[1, 2]]
    assert_stats(cache, load_failures=2, load_count=1, currsize=0)


async def test_compute_many_must_return_a_mapping() -> None:
    cache: AsyncCache[int, str] = AsyncCache()

    async def listy(keys: list[int]) -> list[str]:
        return ["x" for _ in keys]

    with pytest.raises(TypeError, match=r"^compute_many\(\) must return a Mapping, got \['x'\]"):
        await cache.get_many([1], listy)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^compute_many must be a callable"):
        await cache.get_many([1], None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^cache key is unhashable: an argument of type 'list'"):
        await cache.get_many([[1]], BulkLoader())  # type: ignore[list-item]


async def test_invalidate_during_a_bulk_load_drops_only_that_key() -> None:
    cache: AsyncCache[int, str] = AsyncCache()
    load = BulkLoader()
    load.gate = asyncio.Event()
    bulk = asyncio.create_task(cache.get_many([1, 2], load))
    await settle()
    assert cache.invalidate(2) is True
    load.gate.set()
    assert await bulk == {1: "v1", 2: "v2"}  # its caller still gets the value...
    assert 1 in cache and 2 not in cache  # ...but the invalidated key stores nothing


async def test_a_cancelled_caller_leaves_the_bulk_load_running_for_the_others() -> None:
    cache: AsyncCache[int, str] = AsyncCache(cancel_abandoned=True)
    load = BulkLoader()
    load.gate = asyncio.Event()
    bulk = asyncio.create_task(cache.get_many([1, 2], load))
    await settle()
    other = asyncio.create_task(cache.get_or_compute(2, lambda: load([2])))
    await settle()
    bulk.cancel()
    await settle()
    assert bulk.cancelled()
    load.gate.set()
    assert await other == "v2"
    assert 1 in cache and 2 in cache
    assert_stats(cache, loads_running=0)


async def test_a_bulk_load_takes_one_load_slot() -> None:
    limiter = LoadLimiter(1)
    cache: AsyncCache[int, str] = AsyncCache(max_loads=limiter)
    load = BulkLoader()
    load.gate = asyncio.Event()
    first = asyncio.create_task(cache.get_many([1, 2, 3], load))
    await settle()
    second = asyncio.create_task(cache.get_many([4, 5], load))
    await settle()
    assert cache.loading() == {1: "running", 2: "running", 3: "running", 4: "queued", 5: "queued"}
    assert_stats(cache, loads_running=3, loads_queued=1)
    load.gate.set()
    assert await first == {1: "v1", 2: "v2", 3: "v3"}
    assert await second == {4: "v4", 5: "v5"}
    assert load.calls == [[1, 2, 3], [4, 5]]
    assert_stats(cache, loads_running=0, loads_queued=0)


async def test_stale_keys_are_served_and_refreshed_in_one_bulk_load(clock: FakeClock) -> None:
    cache: AsyncCache[int, str] = AsyncCache(ttl=10, stale_ttl=10, timer=clock)
    load = BulkLoader()
    assert await cache.get_many([1, 2], load) == {1: "v1", 2: "v2"}
    clock.tick(12)
    load.gate = asyncio.Event()
    bulk = asyncio.create_task(cache.get_many([1, 2, 3], load))
    await settle()
    assert load.calls == [[1, 2], [3], [1, 2]]  # the missing key, then one refresh of both
    assert_stats(cache, stale_hits=2, refreshes=2, misses=3)
    load.gate.set()
    assert await bulk == {1: "v1", 2: "v2", 3: "v3"}
    await settle()
    assert_stats(cache, loads_running=0, load_count=3)
    assert await cache.get_many([1, 2, 3], load) == {1: "v1", 2: "v2", 3: "v3"}
    assert_stats(cache, stale_hits=2, hits=5)


async def test_the_bulk_decorator_loads_only_missing_keys_once() -> None:
    calls: list[list[int]] = []
    gate = asyncio.Event()

    @async_cached_many(ttl=60)
    async def users(ids: list[int]) -> dict[int, str]:
        calls.append(ids)
        await gate.wait()
        return {i: f"user{i}" for i in ids}

    first = asyncio.create_task(users([1, 2]))
    second = asyncio.create_task(users(iter([2, 3])))
    await settle()
    gate.set()
    assert await first == {1: "user1", 2: "user2"}
    assert await second == {2: "user2", 3: "user3"}
    assert await users([3, 2, 1]) == {3: "user3", 2: "user2", 1: "user1"}
    assert calls == [[1, 2], [3]]
    assert users.invalidate(2) is True
    assert await users([1, 2]) == {1: "user1", 2: "user2"}
    assert calls == [[1, 2], [3], [2]]
    assert users.cache_info().currsize == 3
    users.cache_clear()
    assert users.cache_info().currsize == 0
    assert users.__name__ == "users"


def test_the_bulk_decorator_rejects_what_it_cannot_do() -> None:
    with pytest.raises(TypeError, match=r"^@async_cached_many needs an async def function"):

        @async_cached_many()
        def sync(ids: list[int]) -> dict[int, int]:  # type: ignore[type-var]
            return {}

    with pytest.raises(ValueError, match=r"^ttl must be"):
        async_cached_many(ttl=-1)


async def test_load_timeout_bounds_a_bulk_load_as_a_whole() -> None:
    cache: AsyncCache[int, str] = AsyncCache(load_timeout=0.01)
    load = BulkLoader()
    load.gate = asyncio.Event()  # never set: the load hangs
    with pytest.raises(LoadTimeoutError, match=r"^the bulk load of keys \[1, 2\] exceeded"):
        await cache.get_many([1, 2], load)
    assert_stats(cache, load_timeouts=2, load_failures=2, loads_running=0, currsize=0)
