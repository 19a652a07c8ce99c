"""A worker process for the multi-process tests: `python -m tests.redis_worker MODE URL`.

Workers coordinate with the test through Redis lists (BLPOP), never through sleeps, and
count their loads with INCR on `loads`, so the test reads the fleet-wide total.

    stampede  250 concurrent callers on 20 cold keys; RPUSH ready, BLPOP go; prints stats
    hang      leads the load of key "k" (lease 0.5 s), RPUSH started, then hangs forever
    watch     loads key 1 into its L1, RPUSH ready, then RPUSH dropped <monotonic time>
              the moment the key leaves its L1
    refresh   stale_ttl=60 cache "refresh"; RPUSH ready, BLPOP go; asks for key "k" (stale
              in Redis) twice, printing each answer, then until it answers "new" (the
              fleet's one refresh); prints that
    bulk N    RPUSH ready, BLPOP go; 10 rounds of get_many over overlapping keys (worker N
              asks 0-9 shifted by 10 N, mod 40, in rounds of 4 keys), RPUSHing every key
              its bulk loader loads to `loaded` and INCRing `calls`
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time

from redis.asyncio import Redis

from cachekit import AsyncCache
from cachekit.redis import RedisTier

NAMESPACE = "fleet"
SECRET = b"test-secret-0123456789abcdef"  # the same as tests/test_redis.py's


async def stampede(url: str, control: Redis) -> None:
    tier = RedisTier.from_url(
        url, namespace=NAMESPACE, secret=SECRET, lock_lease=5.0, op_timeout=5.0
    )
    cache: AsyncCache[int, str] = AsyncCache(ttl=60, shared=tier, name="stampede")

    async def load(key: int) -> str:
        await control.incr("loads")
        await asyncio.sleep(0.2)
        return f"value-{key}"

    await control.rpush("ready", "1")
    await control.blpop(["go"], timeout=30)
    results = await asyncio.gather(
        *(cache.get_or_compute(i % 20, lambda i=i: load(i % 20)) for i in range(250))
    )
    assert results == [f"value-{i % 20}" for i in range(250)], results
    print(json.dumps(dataclasses.asdict(cache.stats())))
    await tier.aclose()


async def hang(url: str, control: Redis) -> None:
    tier = RedisTier.from_url(
        url, namespace=NAMESPACE, secret=SECRET, lock_lease=0.5, op_timeout=5.0
    )
    cache: AsyncCache[str, str] = AsyncCache(ttl=60, shared=tier, name="takeover")

    async def load() -> str:
        await control.incr("loads")
        await control.rpush("started", "1")
        await asyncio.Event().wait()  # until SIGKILL
        return "never"

    await cache.get_or_compute("k", load)


async def watch(url: str, control: Redis) -> None:
    tier = RedisTier.from_url(url, namespace=NAMESPACE, secret=SECRET, op_timeout=5.0)
    cache: AsyncCache[int, str] = AsyncCache(ttl=60, shared=tier, name="watch")

    async def load() -> str:
        return "v1"

    await cache.get_or_compute(1, load)
    await control.rpush("ready", "1")
    # Polls the L1 from outside, as a caller would see it (nothing here to wait on).
    while 1 in cache:  # noqa: ASYNC110
        await asyncio.sleep(0.001)
    await control.rpush("dropped", repr(time.monotonic()))
    await tier.aclose()


async def refresh(url: str, control: Redis) -> None:
    tier = RedisTier.from_url(url, namespace=NAMESPACE, secret=SECRET, op_timeout=5.0)
    cache: AsyncCache[str, str] = AsyncCache(ttl=60, stale_ttl=60, shared=tier, name="refresh")

    async def load() -> str:
        await control.incr("loads")
        await asyncio.sleep(0.3)  # long enough for every worker's refresh to overlap it
        return "new"

    await control.rpush("ready", "1")
    await control.blpop(["go"], timeout=30)
    print(await cache.get_or_compute("k", load))  # an L1 miss: the stale entry, served
    print(await cache.get_or_compute("k", load))  # a stale hit: the refresh starts
    async with asyncio.timeout(10):
        while (value := await cache.get_or_compute("k", load)) != "new":  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # the refresh is in the background: ask again
    print(value)
    await tier.aclose()


async def bulk(url: str, control: Redis, index: int) -> None:
    tier = RedisTier.from_url(url, namespace=NAMESPACE, secret=SECRET, op_timeout=5.0)
    cache: AsyncCache[int, str] = AsyncCache(ttl=60, shared=tier, name="bulk")

    async def load(keys: list[int]) -> dict[int, str]:
        await control.incr("calls")
        await control.rpush("loaded", *keys)
        await asyncio.sleep(0.05)
        return {k: f"v{k}" for k in keys}

    await control.rpush("ready", "1")
    await control.blpop(["go"], timeout=30)
    wanted = [(10 * index + k) % 40 for k in range(20)]
    results = await asyncio.gather(
        *(cache.get_many(wanted[i : i + 4], load) for i in range(0, 20, 2))
    )
    for result in results:
        assert all(value == f"v{key}" for key, value in result.items()), result
    print(len(results))
    await tier.aclose()


async def main(mode: str, url: str, *args: str) -> None:
    control = Redis.from_url(url)
    try:
        if mode == "bulk":
            await bulk(url, control, int(args[0]))
            return
        modes = {"stampede": stampede, "hang": hang, "watch": watch, "refresh": refresh}
        await modes[mode](url, control)
    finally:
        await control.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], *sys.argv[3:]))
