"""get_many / @async_cached_many with a shared tier, on a real redis-server: one round trip
reads every L1-missing key, one compute_many call loads the keys no worker is loading, the
others are joined; the fleet loads each key once, whatever key sets overlap."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping

import pytest
from redis.asyncio import Redis

from cachekit import AsyncCache, async_cached_many
from cachekit.redis import RedisTier

from .conftest import assert_stats
from .redis_server import RedisServer
from .test_redis import ROOT, control, make_tier, redis_server, until

__all__ = ["control", "make_tier", "redis_server"]  # fixtures, imported for this module

pytestmark = pytest.mark.timeout(60)


class Bulk:
    """A bulk loader that records each call's keys; held until `release` when gated."""

    def __init__(self, gated: bool = False, missing: frozenset[int] = frozenset()) -> None:
        self.calls: list[list[int]] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        if not gated:
            self.release.set()
        self.missing = missing

    async def __call__(self, keys: list[int]) -> Mapping[int, str]:
        self.calls.append(list(keys))
        self.started.set()
        await self.release.wait()
        return {k: f"v{k}" for k in keys if k not in self.missing}

    def loaded(self) -> list[int]:
        return sorted(k for call in self.calls for k in call)


async def until_stored(control: Redis, key: str) -> None:
    async with asyncio.timeout(5):
        while not await control.exists(key):  # noqa: ASYNC110 - another tier's write
            await asyncio.sleep(0.005)


async def commands(control: Redis) -> dict[str, int]:
    stats = await control.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(f["calls"]) for name, f in stats.items()}


async def test_one_round_trip_reads_and_locks_every_missing_key_and_one_call_loads_them(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier()
    cache = AsyncCache[int, str](ttl=60, shared=tier, name="bulk")
    load = Bulk()
    await cache.get_many([-1, -2], load)  # subscribed, clock read, scripts loaded
    await control.execute_command("CONFIG", "RESETSTAT")
    async with asyncio.timeout(10):
        assert await cache.get_many(range(10), load) == {k: f"v{k}" for k in range(10)}
    assert load.calls[1:] == [list(range(10))]
    counts = await commands(control)
    assert counts.get("set", 0) == 10 + 10  # 10 SET NX GET in one pipeline, 10 stores...
    assert counts.get("evalsha", 0) == 1  # ...in one script
    assert sum(counts.values()) == 1 + 21  # (CONFIG RESETSTAT)
    other = AsyncCache[int, str](ttl=60, shared=make_tier(), name="bulk")
    again = Bulk()
    async with asyncio.timeout(10):
        assert await other.get_many([3, 4, 11], again) == {3: "v3", 4: "v4", 11: "v11"}
    assert again.calls == [[11]]  # 3 and 4 were shared hits
    assert other.stats().shared_hits == 2


async def test_overlapping_key_sets_across_workers_load_each_key_once(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    caches = [AsyncCache[int, str](ttl=60, shared=make_tier(), name="overlap") for _ in range(3)]
    for cache in caches:
        await cache.get_or_compute(-1, lambda: asyncio.sleep(0, "warm"))
    first = Bulk(gated=True)
    others = [Bulk(), Bulk()]
    tier = caches[0]._shared.tier  # type: ignore[union-attr]
    async with asyncio.timeout(10):
        leading = asyncio.create_task(caches[0].get_many(range(0, 10), first))
        await first.started.wait()  # keys 0-9 locked by worker 0, loading
        second = asyncio.create_task(caches[1].get_many(range(5, 15), others[0]))
        await until(lambda: caches[1].stats().remote_waits == 5)  # 5-9 joined...
        for key in range(10, 15):  # ...10-14 its own, loaded at once
            await until_stored(control, tier.key_of("overlap", key))
        third = asyncio.create_task(caches[2].get_many(range(8, 20, 2), others[1]))
        await until(lambda: caches[2].stats().remote_waits == 1)  # 8 joined
        await until(lambda: bool(others[1].calls))
        first.release.set()
        results = [await leading, await second, await third]
    assert results[0] == {k: f"v{k}" for k in range(10)}
    assert results[1] == {k: f"v{k}" for k in range(5, 15)}
    assert results[2] == {k: f"v{k}" for k in range(8, 20, 2)}
    assert first.calls == [list(range(10))]
    assert others[0].calls == [[10, 11, 12, 13, 14]]
    assert others[1].calls == [[16, 18]]  # 10, 12, 14: shared hits; 8: joined
    assert_stats(caches[2], shared_hits=5, shared_misses=2, remote_waits=1)  # (and -1)


async def test_a_key_the_bulk_loader_lacks_fails_alone_and_its_failure_is_shared(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    caches = [
        AsyncCache[int, str](ttl=60, negative_ttl=30, shared=make_tier(), name="missing")
        for _ in range(2)
    ]
    load = Bulk(missing=frozenset({2}))
    async with asyncio.timeout(10):
        with pytest.raises(KeyError, match="no value for 2"):
            await caches[0].get_many([1, 2, 3], load)
        assert await caches[0].get_many([1, 3], load) == {1: "v1", 3: "v3"}
        with pytest.raises(KeyError, match="no value for 2"):
            await caches[1].get_many([2], load)  # the failure, cached by worker 0
    assert load.calls == [[1, 2, 3]]


async def test_async_cached_many_with_shared(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier()
    calls: list[list[int]] = []

    @async_cached_many(ttl=60, shared=tier, name="decorated")
    async def users(ids: list[int]) -> dict[int, str]:
        calls.append(ids)
        return {i: f"user{i}" for i in ids}

    async with asyncio.timeout(10):
        assert await users([3, 1]) == {3: "user3", 1: "user1"}
        other = AsyncCache[int, str](ttl=60, shared=make_tier(), name="decorated")
        assert await other.get_many([1, 3], users) == {1: "user1", 3: "user3"}
    assert calls == [[3, 1]]


async def test_a_bulk_load_while_redis_is_paused_loads_in_process(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier(op_timeout=0.25)
    cache = AsyncCache[int, str](ttl=60, shared=tier, name="paused")
    await cache.get_or_compute(-1, lambda: asyncio.sleep(0, "warm"))
    load = Bulk()
    async with asyncio.timeout(10):
        await control.execute_command("CLIENT", "PAUSE", "1000", "ALL")
        try:
            assert await cache.get_many([1, 2], load) == {1: "v1", 2: "v2"}
        finally:
            await control.execute_command("CLIENT", "UNPAUSE")
    assert load.calls == [[1, 2]]
    assert cache.stats().shared_errors >= 1


async def test_workers_in_separate_processes_load_each_key_once(
    redis_server: RedisServer, control: Redis
) -> None:
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.redis_worker",
            "bulk",
            redis_server.url,
            str(index),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        for index in range(4)
    ]
    try:
        async with asyncio.timeout(30):
            for _ in workers:
                await control.blpop(["ready"], timeout=20)
            await control.rpush("go", *["1"] * len(workers))
            outputs = [(await w.communicate())[0].decode() for w in workers]
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
            await worker.wait()
    assert all(w.returncode == 0 for w in workers), outputs
    loaded = [int(k) for k in await control.lrange("loaded", 0, -1)]
    assert sorted(loaded) == list(range(40)), loaded  # every key once across the fleet
    calls = int(await control.get("calls"))
    assert calls <= 4 * 8, calls  # bulk calls, not one per key


async def test_a_forged_entry_in_a_bulk_read_is_never_deserialized_and_is_reloaded(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    import pickle

    tier = make_tier()
    cache = AsyncCache[int, str](ttl=60, shared=tier, name="forged")
    forged = b"ck" + bytes((2, ord("v"), 0)) + bytes(8) + pickle.dumps("forged")  # unsigned
    await control.set(tier.key_of("forged", 1), forged)
    load = Bulk()
    async with asyncio.timeout(10):
        assert await cache.get_many([1, 2], load) == {1: "v1", 2: "v2"}
    assert load.loaded() == [1, 2]
    assert cache.stats().shared_errors == 1


async def test_stale_keys_of_a_bulk_read_are_served_and_refreshed_once(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    from .test_redis_fresh import put_stale

    tiers = [make_tier() for _ in range(2)]
    caches = [AsyncCache[int, str](ttl=60, stale_ttl=60, shared=t, name="stale") for t in tiers]
    for key in (1, 2):
        await put_stale(control, tiers[0], "stale", key, f"old{key}", stale_ms=1_000)
    load = Bulk()
    async with asyncio.timeout(10):
        for cache in caches:
            assert await cache.get_many([1, 2, 3], load) == {1: "old1", 2: "old2", 3: "v3"}
        assert load.calls == [[3]]
        assert await caches[0].get_many([1, 2], load) == {1: "old1", 2: "old2"}  # refreshes
        await until(lambda: caches[0].get(1) == "v1" and caches[0].get(2) == "v2")
        # The other worker's own refreshes adopt the new entries, recomputing nothing.
        assert await caches[1].get_many([1, 2], load) == {1: "old1", 2: "old2"}
        await until(lambda: caches[1].get(1) == "v1" and caches[1].get(2) == "v2")
    assert load.loaded() == [1, 2, 3]  # each key once, fleet-wide


async def test_a_key_locked_by_a_dead_worker_is_taken_over_within_a_probation(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier(op_timeout=0.25)  # a probation of 1 s
    cache = AsyncCache[int, str](ttl=60, shared=tier, name="dead")
    # A worker locked key 2 and was killed: its lock is never renewed nor released.
    await control.set(tier.key_of("dead", 2), b"lock:dead:1", px=tier._probation_ms)
    load = Bulk()
    loop = asyncio.get_running_loop()
    began = loop.time()
    async with asyncio.timeout(10):
        assert await cache.get_many([1, 2, 3], load) == {1: "v1", 2: "v2", 3: "v3"}
    assert loop.time() - began < 2.5
    assert load.calls == [[1, 3], [2]]  # its own keys at once; the dead worker's after
    assert_stats(cache, shared_misses=3, remote_waits=1, lock_takeovers=1)
