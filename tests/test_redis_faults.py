"""The shared tier when Redis stalls or dies: SIGSTOP/SIGCONT, kill/restart, DEBUG SLEEP.

Each test runs its own redis-server (so a stalled server disturbs no other test) under a
hard timeout: a regression fails here instead of stalling CI. Where real time cannot be
avoided ("the other worker gets the key within about a second"), the bounds are generous,
and the figure they replace (a full lock lease, a minute of queueing) is far outside them.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from redis.asyncio import Redis

from cachekit import AsyncCache
from cachekit.redis import RedisTier

from .conftest import Gate, assert_stats
from .redis_server import HOW_TO_GET_ONE, RedisServer, find_binary, require_binary, required

if find_binary() is None and not required():
    pytest.skip(HOW_TO_GET_ONE, allow_module_level=True)

SECRET = b"test-secret-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[RedisServer]:
    server = RedisServer(require_binary())
    server.start("--enable-debug-command", "yes")
    yield server
    server.stop()


@contextmanager
def stopped(server: RedisServer) -> Iterator[None]:
    """SIGSTOP: the server keeps its connections but answers nothing until SIGCONT."""
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.process.send_signal(signal.SIGCONT)


@pytest.fixture
async def control(server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def make_tier(server: RedisServer) -> AsyncIterator[Callable[..., RedisTier]]:
    tiers: list[RedisTier] = []

    def make(**options: Any) -> RedisTier:
        options.setdefault("namespace", "f")
        options.setdefault("secret", SECRET)
        tier = RedisTier.from_url(server.url, **options)
        tiers.append(tier)
        return tier

    yield make
    for tier in tiers:
        await tier.aclose()


def value(key: Any) -> Callable[[], Any]:
    async def compute() -> str:
        return f"value-{key}"

    return compute


async def warm(cache: AsyncCache[Any, Any]) -> None:
    """One shared load: the tier is bound, subscribed and has read Redis's clock."""
    await cache.get_or_compute("warm-up", value("warm-up"))


# ---------------------------------------------------------------------- item 3


@pytest.mark.timeout(20)
async def test_a_lock_taken_by_an_acquire_that_timed_out_is_released_when_redis_answers(
    make_tier: Callable[..., RedisTier], server: RedisServer, control: Redis
) -> None:
    a = AsyncCache[str, str](ttl=60, shared=make_tier(op_timeout=0.1), name="blip")
    await warm(a)
    with stopped(server):  # a blip: a's acquire times out, but Redis runs it afterwards
        assert await a.get_or_compute("k", value("a")) == "value-a"
    assert_stats(a, shared_errors=1)
    b = AsyncCache[str, str](ttl=60, shared=make_tier(op_timeout=0.1), name="blip")
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(8):
        assert await b.get_or_compute("k", value("b")) == "value-b"
    # Before: b waited out the whole lock_lease (10 s) of a lock nobody held.
    assert loop.time() - started < 2.0


@pytest.mark.timeout(20)
async def test_a_lock_whose_store_failed_is_released_when_redis_answers(
    make_tier: Callable[..., RedisTier], server: RedisServer, control: Redis
) -> None:
    tier = make_tier(op_timeout=0.1, cooldown=0.3)
    a = AsyncCache[str, str](ttl=60, shared=tier, name="store")
    await warm(a)
    gate = Gate("a")
    loading = asyncio.create_task(a.get_or_compute("k", gate))
    await gate.started.wait()
    key = tier.key_of("store", "k")
    async with asyncio.timeout(5):
        # Until renewed (the load proved alive): a full lease. State in Redis: no event.
        while await control.pttl(key) <= 1500:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    with stopped(server):  # three calls fail: the circuit opens, the store is skipped
        for n in range(3):
            await a.get_or_compute(n, value(n))
    gate.release.set()
    assert await loading == "a"
    assert_stats(a, shared_errors=4)
    b = AsyncCache[str, str](ttl=60, shared=make_tier(op_timeout=0.1), name="store")
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(8):
        assert await b.get_or_compute("k", value("b")) == "value-b"
    assert loop.time() - started < 2.0  # before: what was left of the 10 s lease


@pytest.mark.timeout(20)
async def test_after_a_half_second_debug_sleep_other_workers_get_the_key_within_a_second(
    make_tier: Callable[..., RedisTier], server: RedisServer
) -> None:
    a = AsyncCache[str, str](ttl=60, shared=make_tier(op_timeout=0.1), name="sleep")
    await warm(a)
    sleeper = Redis.from_url(server.url)
    try:
        sleeping = asyncio.create_task(sleeper.execute_command("DEBUG", "SLEEP", "0.5"))
        await asyncio.sleep(0.05)  # (luck only decides whether the test can fail, see below)
        assert await a.get_or_compute("k", value("a")) == "value-a"
        await sleeping
    finally:
        await sleeper.aclose()
    assert_stats(a, shared_errors=1)  # the acquire did time out: Redis ran it after the sleep
    b = AsyncCache[str, str](ttl=60, shared=make_tier(op_timeout=0.1), name="sleep")
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(8):
        assert await b.get_or_compute("k", value("b")) == "value-b"
    assert loop.time() - started < 2.0
