"""stale_ttl, refresh_after and stale_if_error with a shared tier, on a real redis-server.

Stale entries are written into Redis directly (signed with the tests' secret, their fresh
time in the past on Redis's own clock), so no test waits for time to pass; L1 times come
from an injected clock. Each test runs under a hard timeout.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from cachekit import AsyncCache
from cachekit._shared import VALUE, seal, unseal
from cachekit.redis import RedisTier

from .conftest import FakeClock, Gate, assert_stats
from .redis_server import RedisServer
from .test_redis import ROOT, SECRET, control, make_tier, redis_server, until

__all__ = ["control", "make_tier", "redis_server"]  # fixtures, imported for this module

pytestmark = pytest.mark.timeout(60)


async def redis_ms(control: Redis) -> int:
    seconds, micros = await control.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def put_stale(
    control: Redis, tier: RedisTier, name: str, key: Any, value: Any, stale_ms: int
) -> bytes:
    """Store `value` for `key` as a worker would have, fresh until `stale_ms` ago (a
    negative `stale_ms`: fresh for that long still), kept in Redis for a minute more."""
    now = await redis_ms(control)
    redis_key = tier.key_of(name, key)
    payload = seal(SECRET, redis_key.encode(), VALUE, now - stale_ms, pickle.dumps(value))
    await control.set(redis_key, payload, pxat=now + 60_000)
    return payload


async def stored(control: Redis, tier: RedisTier, name: str, key: Any) -> Any:
    redis_key = tier.key_of(name, key)
    payload = await control.get(redis_key)
    if payload is None:
        return None
    return pickle.loads(unseal(SECRET, redis_key.encode(), payload)[2])


async def test_a_stale_entry_is_served_at_once_and_refreshed_once_for_the_fleet(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tiers = [make_tier() for _ in range(3)]
    caches = [AsyncCache[str, str](ttl=60, stale_ttl=60, shared=t, name="swr") for t in tiers]
    await put_stale(control, tiers[0], "swr", "k", "old", stale_ms=1_000)
    gate = Gate("new")  # every worker's loader: counts the fleet's calls
    async with asyncio.timeout(10):
        for cache in caches:  # an L1 miss that finds a stale entry: served, not loaded
            assert await cache.get_or_compute("k", gate) == "old"
        assert gate.calls == 0
        for cache in caches:  # a stale hit: served at once, and a background refresh...
            assert await cache.get_or_compute("k", gate) == "old"
        await gate.started.wait()
        # ...of which one runs; the others mark its lock and wait, serving "old".
        await until(lambda: sum(c.stats().remote_waits for c in caches) == 2)
        assert await stored(control, tiers[0], "swr", "k") == "old"  # readers never blocked
        assert await caches[1].get_or_compute("k", gate) == "old"
        gate.release.set()
        for cache in caches:  # woken by the refresher (no broadcast): they adopt its entry
            await until(lambda cache=cache: cache.get("k") == "new")
    assert gate.calls == 1
    assert await stored(control, tiers[0], "swr", "k") == "new"
    assert await control.exists(tiers[0].key_of("swr", "k").removesuffix(":v") + ":r") == 0
    # The new entry outlives its fresh time by the stale window in Redis. (Its expiry is
    # set from an upper bound of Redis's clock: the last reading's send time, plus 0.1%
    # drift, so it may lie a few ms past 120 s from now on a loaded machine.)
    assert 100_000 < await control.pttl(tiers[0].key_of("swr", "k")) <= 120_000 + 500


async def test_a_failed_refresh_leaves_the_shared_value_servable_and_quiet(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tiers = [make_tier() for _ in range(2)]
    caches = [
        AsyncCache[str, str](ttl=60, stale_ttl=60, negative_ttl=5, shared=t, name="fail")
        for t in tiers
    ]
    payload = await put_stale(control, tiers[0], "fail", "k", "old", stale_ms=1_000)
    calls = 0

    async def broken() -> str:
        nonlocal calls
        calls += 1
        raise ConnectionError("upstream down")

    async with asyncio.timeout(10):
        assert await caches[0].get_or_compute("k", broken) == "old"
        assert await caches[0].get_or_compute("k", broken) == "old"  # refresh: it fails
        await until(lambda: caches[0].stats().refresh_failures == 1)
        assert await caches[0].get_or_compute("k", broken) == "old"  # quiet: not asked again
        assert await caches[1].get_or_compute("k", broken) == "old"
        assert await caches[1].get_or_compute("k", broken) == "old"  # the fleet is quiet too
        await until(lambda: caches[1].stats().remote_waits == 1)
    assert calls == 1
    assert await control.get(tiers[0].key_of("fail", "k")) == payload  # untouched
    refresh_lock = tiers[0].key_of("fail", "k").removesuffix(":v") + ":r"
    assert 0 < await control.pttl(refresh_lock) <= 5_000  # held for negative_ttl


async def test_refresh_after_refreshes_ahead_and_every_worker_drops_the_old_value(
    make_tier: Callable[..., RedisTier], control: Redis, clock: FakeClock
) -> None:
    tiers = [make_tier() for _ in range(2)]
    caches = [
        AsyncCache[str, str](ttl=60, refresh_after=10, timer=clock, shared=t, name="ahead")
        for t in tiers
    ]
    await put_stale(control, tiers[0], "ahead", "k", "v1", stale_ms=-50_000)  # fresh 50 s
    gate = Gate("v2")
    async with asyncio.timeout(10):
        for cache in caches:
            assert await cache.get_or_compute("k", gate) == "v1"  # shared hits
        clock.tick(11)  # past the refresh point in L1, still fresh
        assert await caches[0].get_or_compute("k", gate) == "v1"  # refresh ahead starts
        await gate.started.wait()
        gate.release.set()
        await until(lambda: caches[0].get("k") == "v2")
        # Nothing is broadcast: the other worker serves v1 until its own refresh point,
        # where it finds a newer entry than its own and adopts it without recomputing.
        assert caches[1].get("k") is None  # (past its refresh point: not a blind hit)
        assert await caches[1].get_or_compute("k", gate) == "v1"
        await until(lambda: caches[1].get("k") == "v2")
    assert gate.calls == 1
    assert_stats(caches[0], refreshes=1, shared_misses=1)
    assert_stats(caches[1], refreshes=1, shared_misses=0, shared_hits=2)


async def test_stale_if_error_serves_what_redis_holds_when_the_reload_fails(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier()
    cache = AsyncCache[str, str](ttl=60, stale_if_error=60, shared=tier, name="grace")
    await put_stale(control, tier, "grace", "k", "old", stale_ms=2_000)

    async def broken() -> str:
        raise ConnectionError("upstream down")

    async def working() -> str:
        return "new"

    async with asyncio.timeout(10):
        # Past its fresh time and no stale_ttl: reloaded, the old value as the fallback.
        assert await cache.get_or_compute("k", broken) == "old"
        assert await stored(control, tier, "grace", "k") == "old"
        other = AsyncCache[str, str](ttl=60, stale_if_error=60, shared=make_tier(), name="grace")
        assert await other.get_or_compute("k", working) == "new"
        assert await stored(control, tier, "grace", "k") == "new"


async def test_a_refresh_fenced_out_by_an_invalidation_stores_nothing(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier()
    cache = AsyncCache[str, str](ttl=60, stale_ttl=60, shared=tier, name="fence")
    other_tier = make_tier()
    other = AsyncCache[str, str](ttl=60, stale_ttl=60, shared=other_tier, name="fence")
    await put_stale(control, tier, "fence", "k", "old", stale_ms=1_000)
    gate = Gate("refreshed")
    async with asyncio.timeout(10):
        assert await cache.get_or_compute("k", gate) == "old"
        assert await cache.get_or_compute("k", gate) == "old"
        await gate.started.wait()
        other.invalidate("k")  # while the refresh computes
        await other_tier.settle()
        gate.release.set()
        await until(lambda: not len(cache))  # the invalidation dropped it (and the refresh)
        await tier.settle()
    assert await control.exists(tier.key_of("fence", "k")) == 0  # not written back


async def test_a_refresh_overtaken_by_a_set_puts_the_set_value_back(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier()
    cache = AsyncCache[str, str](ttl=60, stale_ttl=60, shared=tier, name="overtaken")
    other_tier = make_tier()
    other = AsyncCache[str, str](ttl=60, stale_ttl=60, shared=other_tier, name="overtaken")
    await put_stale(control, tier, "overtaken", "k", "old", stale_ms=1_000)
    gate = Gate("refreshed")
    redis_key = tier.key_of("overtaken", "k")
    async with asyncio.timeout(10):
        assert await cache.get_or_compute("k", gate) == "old"
        assert await cache.get_or_compute("k", gate) == "old"
        await gate.started.wait()
        other.set("k", "set meanwhile")
        await other_tier.settle()
        written, expiry = await control.get(redis_key), await control.pttl(redis_key)
        gate.release.set()
        await until(lambda: not cache.loading())
        await tier.settle()
    assert await control.get(redis_key) == written  # the refresh's SET ... GET put it back
    assert 0 < await control.pttl(redis_key) <= expiry
    assert await stored(control, tier, "overtaken", "k") == "set meanwhile"
    assert await control.exists(redis_key.removesuffix(":v") + ":r") == 0


async def test_a_refresher_that_died_holds_the_fleet_back_one_probation_at_most(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier(op_timeout=0.25)  # a probation of 1 s
    cache = AsyncCache[str, str](ttl=60, stale_ttl=60, shared=tier, name="dead")
    await put_stale(control, tier, "dead", "k", "old", stale_ms=1_000)
    refresh_lock = tier.key_of("dead", "k").removesuffix(":v") + ":r"
    # A worker took the refresh lock and was killed: its lock was never renewed.
    await control.set(refresh_lock, b"lock:dead:1", px=tier._probation_ms)
    gate = Gate("new")
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(10):
        assert await cache.get_or_compute("k", gate) == "old"
        began = loop.time()
        assert await cache.get_or_compute("k", gate) == "old"  # served while it waits
        await until(lambda: cache.stats().remote_waits == 1)
        await until(lambda: cache.stats().refreshes == 1 and not cache.loading())
        while gate.calls == 0:  # each stale hit past the lapse may start the refresh
            assert await cache.get_or_compute("k", gate) == "old"
            await asyncio.sleep(0.05)
        gate.release.set()
        await until(lambda: cache.get("k") == "new")
    assert loop.time() - began < 3.0
    assert gate.calls == 1


async def test_a_refresh_while_redis_is_paused_refreshes_in_process_and_touches_nothing(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier(op_timeout=0.25)
    cache = AsyncCache[str, str](ttl=60, stale_ttl=60, shared=tier, name="paused")
    payload = await put_stale(control, tier, "paused", "k", "old", stale_ms=1_000)
    gate = Gate("new")
    gate.release.set()
    async with asyncio.timeout(10):
        assert await cache.get_or_compute("k", gate) == "old"
        await control.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        try:
            assert await cache.get_or_compute("k", gate) == "old"  # served; refresh starts
            await until(lambda: cache.get("k") == "new")  # refreshed here, Redis unanswering
        finally:
            await control.execute_command("CLIENT", "UNPAUSE")
    assert gate.calls == 1
    assert cache.stats().shared_errors >= 1
    assert await control.get(tier.key_of("paused", "k")) == payload


async def test_workers_in_separate_processes_refresh_a_stale_key_once(
    redis_server: RedisServer, control: Redis
) -> None:
    tier = RedisTier.from_url(redis_server.url, namespace="fleet", secret=SECRET)
    try:
        await put_stale(control, tier, "refresh", "k", "old", stale_ms=1_000)
    finally:
        await tier.aclose()
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.redis_worker",
            "refresh",
            redis_server.url,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    try:
        async with asyncio.timeout(30):
            for _ in workers:
                await control.blpop(["ready"], timeout=20)
            await control.rpush("go", *["1"] * len(workers))
            outputs = [(await w.communicate())[0].decode().split() for w in workers]
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
            await worker.wait()
    assert all(w.returncode == 0 for w in workers), outputs
    assert all(out[:2] == ["old", "old"] and out[-1] == "new" for out in outputs), outputs
    assert int(await control.get("loads")) == 1
