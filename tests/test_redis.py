"""The shared tier against a real redis-server (never a mock): see tests/redis_server.py.

In-process "workers" are separate RedisTier instances (each its own client, subscription
and worker id); the multi-process tests run tests/redis_worker.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import ConnectionPool, Redis

from cachekit import AsyncCache, CacheStats, async_cached
from cachekit._shared import VALUE, seal
from cachekit.redis import JSONSerializer, RedisTier

from .conftest import Gate, assert_stats, settle
from .redis_server import HOW_TO_GET_ONE, RedisServer, find_binary, require_binary, required

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = str(ROOT / "cachekit")
SECRET = b"test-secret-0123456789abcdef"  # every tier the fixture builds signs with it

# One skip line for the module when there is no server (CI sets CACHEKIT_REQUIRE_REDIS=1,
# and then every test fails instead, through require_binary()).
if find_binary() is None and not required():
    pytest.skip(HOW_TO_GET_ONE, allow_module_level=True)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(require_binary())
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def control(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A plain client on an empty database, for the test's own reads and writes."""
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
async def make_tier(
    redis_server: RedisServer, control: Redis
) -> AsyncIterator[Callable[..., RedisTier]]:
    """Builds tiers ("workers") on the test server; closes them after the test."""
    tiers: list[RedisTier] = []

    def make(url: str | None = None, **options: Any) -> RedisTier:
        options.setdefault("namespace", "t")
        if "serializer" not in options:
            options.setdefault("secret", SECRET)
        # Generous: a CPU-starved CI runner must not make exact-count tests degrade.
        options.setdefault("op_timeout", 5.0)
        tier = RedisTier.from_url(url or redis_server.url, **options)
        tiers.append(tier)
        return tier

    yield make
    for tier in tiers:
        await tier.aclose()


def counting(result: Callable[[Any], Any] = lambda key: f"value-{key}") -> Any:
    """A loader factory counting its calls: loader(key) -> zero-argument compute."""

    class Loader:
        calls = 0

        def __call__(self, key: Any) -> Callable[[], Any]:
            async def compute() -> Any:
                Loader.calls += 1
                return result(key)

            return compute

    return Loader()


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait for a condition another task or process brings about, with a deadline."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - state of other tiers, no event to await
            await asyncio.sleep(0.005)


def total(stats: list[dict[str, Any]] | list[CacheStats], name: str) -> int:
    return sum(s[name] if isinstance(s, dict) else getattr(s, name) for s in stats)


# ---------------------------------------------------------------------- basics


async def test_a_value_loaded_by_one_worker_is_a_shared_hit_for_another(
    make_tier: Callable[..., RedisTier],
) -> None:
    a = AsyncCache[int, str](ttl=60, shared=make_tier(), name="users")
    b = AsyncCache[int, str](ttl=60, shared=make_tier(), name="users")
    load = counting()
    assert await a.get_or_compute(1, load(1)) == "value-1"
    assert await b.get_or_compute(1, load(1)) == "value-1"
    assert await b.get_or_compute(1, load(1)) == "value-1"  # now an L1 hit: Redis untouched
    assert load.calls == 1
    assert_stats(a, misses=1, shared_misses=1, shared_hits=0)
    assert_stats(b, hits=1, misses=1, shared_hits=1, shared_misses=0, shared_errors=0)


async def test_an_l1_hit_sends_nothing_to_redis(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    async def commands() -> int:
        stats = await control.info("commandstats")
        return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")

    tier = make_tier()

    @async_cached(ttl=60, shared=tier)
    async def double(x: int) -> int:
        return 2 * x

    cache = AsyncCache[int, int](ttl=60, shared=tier, name="l1")
    assert await double(1) == 2
    assert await cache.get_or_compute(1, counting(lambda k: 2)(1)) == 2
    before = await commands()
    for _ in range(100):
        assert await double(1) == 2
        assert await cache.get_or_compute(1, counting(lambda k: 3)(1)) == 2
    assert await commands() == before
    assert double.cache_info().hits == 100


async def test_a_redis_hit_with_a_cold_l1_starts_no_task(
    make_tier: Callable[..., RedisTier],
) -> None:
    # The caller that leads the flight looks the key up in its own task (#16): a value
    # found in Redis costs no flight task, and no loop iteration to hand it over.
    loaded = AsyncCache[int, str](ttl=60, shared=make_tier(), name="inline")
    for key in range(10):
        await loaded.get_or_compute(key, counting()(key))
    cache = AsyncCache[int, str](ttl=60, shared=make_tier(), name="inline")
    await cache.get_or_compute(-1, counting()(-1))  # connected, subscribed, clock read
    loop = asyncio.get_running_loop()
    started: list[Any] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        started.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    try:
        load = counting()
        for key in range(10):
            assert await cache.get_or_compute(key, load(key)) == f"value-{key}"
        # (the test's own miss of key 10 needs a task for its computation: the control)
        assert await cache.get_or_compute(10, load(10)) == "value-10"
    finally:
        loop.set_task_factory(None)
    assert load.calls == 1
    # No other task either: the tier's own client has no socket timeout, which on Python
    # 3.11 made redis-py start a task (asyncio.wait_for) for every command it sent.
    assert all(c.cr_code.co_filename.startswith(PACKAGE) for c in started), started
    ours = [c.__qualname__ for c in started]
    assert ours == ["AsyncCache._run", "_Binding._renew"]  # key 10's load and its lease
    assert_stats(cache, misses=12, shared_hits=10, shared_misses=2)


class _Traced(Redis):
    """A client whose execute_command is its own (as tracing instrumentation's would be)."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        return await Redis.execute_command(self, *args, **options)


@pytest.mark.parametrize(
    ("kind", "retries", "through_execute_command"),
    [(Redis, 0, 0), (Redis, 2, 3), (_Traced, 0, 3)],
    ids=["plain-client-retrying-nothing", "plain-client-that-retries", "client-subclass"],
)
async def test_a_redis_hit_bypasses_execute_command_only_where_it_would_add_nothing(
    redis_server: RedisServer,
    make_tier: Callable[..., RedisTier],
    monkeypatch: pytest.MonkeyPatch,
    kind: type[Redis],
    retries: int,
    through_execute_command: int,
) -> None:
    # A plain client that retries nothing has its hits read on a connection of its pool,
    # without execute_command (#16: that layer cost a hit more than cachekit's own work).
    # A client that retries, or overrides execute_command, has every acquire through it.
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    loaded = AsyncCache[int, str](ttl=60, shared=make_tier(), name="route")
    for key in range(3):
        await loaded.get_or_compute(key, counting()(key))
    client = kind.from_url(redis_server.url, retry=Retry(NoBackoff(), retries))
    acquires: list[tuple[Any, ...]] = []
    original = Redis.execute_command

    async def recording(self: Redis, *args: Any, **options: Any) -> Any:
        if self is client and args[0] == "SET" and b"NX" in args:
            acquires.append(args)
        return await original(self, *args, **options)

    monkeypatch.setattr(Redis, "execute_command", recording)
    tier = RedisTier(client, namespace="t", secret=SECRET, op_timeout=5.0)
    cache = AsyncCache[int, str](ttl=60, shared=tier, name="route")
    try:
        load = counting()
        for key in range(3):
            assert await cache.get_or_compute(key, load(key)) == f"value-{key}"
        assert load.calls == 0
        assert_stats(cache, misses=3, shared_hits=3, shared_errors=0)
        assert len(acquires) == through_execute_command
    finally:
        await tier.aclose()
        await client.aclose()


async def test_scripts_run_on_the_pool_and_one_redis_forgot_is_loaded_again(
    make_tier: Callable[..., RedisTier], control: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The scripts take the hit's route (a connection of the pool, without execute_command),
    # so a connection opened for one outlives its deadline, as the hit's does. A script
    # Redis no longer knows (SCRIPT FLUSH, a restart) is loaded and run through the client.
    through: list[Any] = []
    original = Redis.execute_command

    async def recording(self: Redis, *args: Any, **options: Any) -> Any:
        through.append(args[0])
        return await original(self, *args, **options)

    monkeypatch.setattr(Redis, "execute_command", recording)
    cache = AsyncCache[int, str](ttl=60, shared=make_tier(), name="scripts")
    assert await cache.get_or_compute(0, counting()(0)) == "value-0"  # loads the scripts
    through.clear()
    assert await cache.get_or_compute(1, counting()(1)) == "value-1"  # its store: a script
    assert "EVALSHA" not in through
    await control.script_flush()
    assert await cache.get_or_compute(2, counting()(2)) == "value-2"
    # NOSCRIPT on the pool's connection, then the script object's own way, once
    assert through == ["SCRIPT FLUSH", "EVALSHA", "SCRIPT LOAD", "EVALSHA"]
    other = AsyncCache[int, str](ttl=60, shared=make_tier(), name="scripts")
    load = counting()
    assert await other.get_or_compute(2, load(2)) == "value-2"
    assert load.calls == 0  # stored by the script loaded again
    assert_stats(cache, shared_misses=3, shared_errors=0)


@pytest.mark.timeout(30)
async def test_a_leader_cancelled_during_its_redis_lookup_hands_it_to_the_flight(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    loaded = AsyncCache[str, str](ttl=60, shared=make_tier(), name="handover")
    await loaded.get_or_compute("k", counting()("k"))
    cache = AsyncCache[str, str](ttl=60, shared=make_tier(), name="handover")
    await cache.get_or_compute("warm", counting()("warm"))
    load = counting()
    # The lookup (SET NX GET, a write) stalls; the test's own UNPAUSE is not a write.
    await control.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")
    try:
        leader = asyncio.create_task(cache.get_or_compute("k", load("k")))
        await settle()
        joiner = asyncio.create_task(cache.get_or_compute("k", load("k")))
        await settle()
        assert not leader.done() and not joiner.done()
        leader.cancel()
        await settle()
    finally:
        await control.execute_command("CLIENT", "UNPAUSE")
    async with asyncio.timeout(10):
        assert await joiner == "value-k"
        with pytest.raises(asyncio.CancelledError):
            await leader
    assert load.calls == 0  # what Redis held, read once more by the flight's task
    assert_stats(cache, coalesced=1, shared_hits=1, shared_errors=0)


@pytest.mark.timeout(30)
async def test_a_leader_cancelled_after_its_acquire_took_the_lock_leaves_no_lock_behind(
    make_tier: Callable[..., RedisTier],
) -> None:
    # The acquire of a cancelled lookup may have taken the load lock: Redis ran it, and its
    # reply was on its way. The lookup releases it, so the load that starts over in the
    # flight's task never waits for a holder that is gone (a whole probation, and then a
    # takeover): with op_timeout 5 and this lease, a probation of 20 s, past the timeout.
    # (On 3.11, redis-py's send may swallow the cancellation: the leader then loads.)
    cache = AsyncCache[str, str](ttl=60, shared=make_tier(lock_lease=30.0), name="cancelled")
    await cache.get_or_compute("warm", counting()("warm"))
    load = counting()
    leader = asyncio.create_task(cache.get_or_compute("k", load("k")))
    await asyncio.sleep(0)  # its first step: the acquire is sent; its reply not yet read
    joiner = asyncio.create_task(cache.get_or_compute("k", load("k")))  # joins next step
    time.sleep(0.2)  # noqa: ASYNC251 - the loop must not read the reply: Redis runs the acquire
    leader.cancel()
    async with asyncio.timeout(10):
        assert await joiner == "value-k"
        await asyncio.gather(leader, return_exceptions=True)
    assert load.calls == 1
    assert_stats(cache, coalesced=1, shared_errors=0)


@pytest.mark.timeout(30)
async def test_a_loop_that_ends_under_a_leaders_redis_lookup_leaves_no_task_behind(
    make_tier: Callable[..., RedisTier], redis_server: RedisServer, control: Redis
) -> None:
    import gc

    from .conftest import LOOP_ERRORS

    cache = AsyncCache[str, str](ttl=60, shared=make_tier(), name="ended")
    tasks: list[asyncio.Task[str]] = []

    async def main() -> None:
        await cache.get_or_compute("warm", counting()("warm"))  # this loop's lane, connected
        pauser = Redis.from_url(redis_server.url)
        await pauser.execute_command("CLIENT", "PAUSE", 2000, "WRITE")  # the lookup stalls
        await pauser.aclose()
        tasks.append(asyncio.create_task(cache.get_or_compute("k", counting()("k"))))
        await settle()
        # main returns: asyncio.run cancels the leader in its lookup, nobody else waits

    try:
        await asyncio.to_thread(asyncio.run, main())
    finally:
        await control.execute_command("CLIENT", "UNPAUSE")
    gc.collect()
    assert tasks[0].cancelled()
    assert [e.get("message") for e in LOOP_ERRORS] == []  # no task left pending, nothing raised
    assert not cache.holds_key("k")  # the flight landed (cancelled), and left its key


async def test_a_shared_hit_lands_in_l1_with_what_is_left_of_the_redis_entry(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier()
    key = tier.key_of("ttl", "k")
    seconds, micros = await control.time()
    at = seconds * 1000 + micros // 1000 + 5_000  # as if stored 55 s ago with ttl=60
    await control.set(key, seal(SECRET, key.encode(), VALUE, at, pickle.dumps("stored")), pxat=at)
    b = AsyncCache[str, str](ttl=60, shared=tier, name="ttl")
    assert await b.get_or_compute("k", counting()("k")) == "stored"
    loop = asyncio.get_running_loop()
    now = loop.time()
    left = await control.pttl(key) / 1000
    assert 4.0 < b._entries["k"].expires_at - now <= left  # never outlives the Redis entry


async def test_the_loaders_own_l1_entry_never_outlives_the_redis_entry(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier()
    a = AsyncCache[str, str](ttl=60, shared=tier, name="own")
    await a.get_or_compute("k", counting()("k"))
    now = asyncio.get_running_loop().time()
    left = await control.pttl(tier.key_of("own", "k")) / 1000
    assert 59.0 < a._entries["k"].expires_at - now <= left


async def test_a_per_call_ttl_is_the_ttl_stored_in_redis(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier()
    a = AsyncCache[str, str](ttl=60, shared=tier, name="call")
    assert await a.get_or_compute("k", counting()("k"), ttl=5) == "value-k"
    left = await control.pttl(tier.key_of("call", "k")) / 1000
    assert 4.0 < left <= 5.05  # (stored until an upper bound of Redis's clock + 5 s)
    b = AsyncCache[str, str](ttl=60, shared=make_tier(), name="call")
    assert await b.get_or_compute("k", counting()("other")) == "value-k"
    assert b._entries["k"].expires_at - asyncio.get_running_loop().time() <= 5.0


async def test_an_entry_past_its_stored_expiry_is_a_miss(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    # Redis has not dropped it yet, but by the payload's own expiry it is gone.
    tier = make_tier()
    key = tier.key_of("old", "k")
    seconds, micros = await control.time()
    at = seconds * 1000 + micros // 1000 - 1
    await control.set(key, seal(SECRET, key.encode(), VALUE, at, pickle.dumps("stored")), px=60_000)
    cache = AsyncCache[str, str](ttl=60, shared=tier, name="old")
    assert await cache.get_or_compute("k", counting()("k")) == "value-k"
    assert_stats(cache, shared_misses=1, shared_hits=0, shared_errors=0)  # a miss, not an error
    assert await _stored(control, tier, "old", "k") == "value-k"  # replaced


async def test_a_payload_copied_before_an_invalidation_and_written_back_later_is_not_served(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    # A replay: someone who can write to Redis (but has no secret) keeps a signed payload
    # and writes it back after the key was invalidated, with no TTL. Its embedded expiry
    # (covered by the signature) still holds: once past it, the payload is a miss.
    a = AsyncCache[str, str](ttl=0.3, shared=make_tier(), name="replay")
    b = AsyncCache[str, str](ttl=60, shared=make_tier(), name="replay")
    await a.get_or_compute("k", counting(lambda k: "old")("k"))
    key = a._shared.tier.key_of("replay", "k")  # type: ignore[union-attr]
    copied = await control.get(key)
    a.invalidate("k")
    await a._shared.tier.settle()  # type: ignore[union-attr]
    await asyncio.sleep(0.4)  # real time: past the payload's own expiry
    await control.set(key, copied)  # written back with no TTL: Redis would keep it forever
    assert await b.get_or_compute("k", counting(lambda k: "new")("k")) == "new"


async def test_a_cached_failure_is_raised_by_other_workers_with_type_and_message(
    make_tier: Callable[..., RedisTier],
) -> None:
    calls = 0

    async def fail() -> str:
        nonlocal calls
        calls += 1
        raise LookupError("no such user: 7")

    a = AsyncCache[int, str](ttl=60, negative_ttl=5, shared=make_tier(), name="neg")
    b = AsyncCache[int, str](ttl=60, negative_ttl=5, shared=make_tier(), name="neg")
    with pytest.raises(LookupError, match=r"^no such user: 7$"):
        await a.get_or_compute(7, fail)
    with pytest.raises(LookupError, match=r"^no such user: 7$"):
        await b.get_or_compute(7, fail)
    with pytest.raises(LookupError):
        await b.get_or_compute(7, fail)  # L1 negative hit
    assert calls == 1
    assert_stats(b, shared_hits=1, hits=1)


async def test_an_uncached_failure_is_not_shared(make_tier: Callable[..., RedisTier]) -> None:
    calls = 0

    async def fail() -> str:
        nonlocal calls
        calls += 1
        raise ValueError("flaky")

    a = AsyncCache[int, str](ttl=60, shared=make_tier(), name="flaky")
    b = AsyncCache[int, str](ttl=60, shared=make_tier(), name="flaky")
    for cache in (a, b):
        with pytest.raises(ValueError, match="flaky"):
            await cache.get_or_compute(1, fail)
    assert calls == 2


async def test_decorator_names_the_cache_after_the_function(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier()

    @async_cached(ttl=60, shared=tier)
    async def get_user(user_id: int) -> str:
        return f"user-{user_id}"

    assert await get_user(3) == "user-3"
    name = f"{__name__}.test_decorator_names_the_cache_after_the_function.<locals>.get_user"
    assert await control.exists(tier.key_of(name, 3)) == 1
    assert get_user.cache_info().shared_misses == 1


async def test_unencodable_argument_is_a_type_error_unless_key_is_given(
    make_tier: Callable[..., RedisTier],
) -> None:
    tier = make_tier()

    class Thing:
        pass

    @async_cached(ttl=60, shared=tier)
    async def describe(thing: Thing) -> str:
        return "thing"

    with pytest.raises(TypeError, match=r"argument of type 'test_unencodable.*Thing' has none"):
        await describe(Thing())
    assert describe.cache_info().load_failures == 0  # raised before any flight

    @async_cached(ttl=60, shared=tier, key=lambda thing: "the-thing")
    async def keyed(thing: Thing) -> str:
        return "thing"

    assert await keyed(Thing()) == "thing"


async def test_json_serializer_round_trips_plain_data(make_tier: Callable[..., RedisTier]) -> None:
    value = {"name": "Ada", "tags": ["a", "b"], "n": 1.5}
    a = AsyncCache[str, Any](ttl=60, shared=make_tier(serializer=JSONSerializer()), name="j")
    b = AsyncCache[str, Any](ttl=60, shared=make_tier(serializer=JSONSerializer()), name="j")
    await a.get_or_compute("k", counting(lambda k: value)("k"))
    assert await b.get_or_compute("k", counting()("k")) == value
    assert_stats(b, shared_hits=1)


async def test_a_value_over_max_value_bytes_stays_in_l1(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier(max_value_bytes=100)
    a = AsyncCache[str, str](ttl=60, shared=tier, name="big")
    assert await a.get_or_compute("k", counting(lambda k: "x" * 200)("k")) == "x" * 200
    assert "k" in a
    await tier.settle()
    assert await control.keys("*") == []  # neither the value nor the lock


# ---------------------------------------------------------------------- single flight


async def test_a_load_longer_than_the_lease_is_not_duplicated(
    make_tier: Callable[..., RedisTier],
) -> None:
    gate = Gate("slow")
    a = AsyncCache[str, str](ttl=60, shared=make_tier(lock_lease=0.2), name="slow")
    b = AsyncCache[str, str](ttl=60, shared=make_tier(lock_lease=0.2, wait_timeout=10), name="slow")
    first = asyncio.create_task(a.get_or_compute("k", gate))
    await gate.started.wait()
    second = asyncio.create_task(b.get_or_compute("k", gate))
    await until(lambda: b.stats().remote_waits == 1)
    await asyncio.sleep(0.7)  # over three leases: only renewal keeps the lock
    gate.release.set()
    assert await first == await second == "slow"
    assert gate.calls == 1
    assert_stats(b, shared_hits=1, remote_waits=1, lock_takeovers=0, shared_misses=0)


async def test_the_acquire_script_for_redis_before_7_does_what_set_nx_get_does(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tiers = [make_tier(), make_tier()]
    for tier in tiers:
        tier._native_acquire = False  # as after Redis 6.2 refused SET NX GET
    gate = Gate("old")
    a = AsyncCache[str, str](ttl=60, shared=tiers[0], name="v6")
    b = AsyncCache[str, str](ttl=60, shared=tiers[1], name="v6")
    first = asyncio.create_task(a.get_or_compute("k", gate))
    await gate.started.wait()
    assert (await control.get(tiers[0].key_of("v6", "k")) or b"").startswith(b"lock:")
    second = asyncio.create_task(b.get_or_compute("k", gate))
    await until(lambda: b.stats().remote_waits == 1)
    gate.release.set()
    assert await first == await second == "old"
    c = AsyncCache[str, str](ttl=60, shared=tiers[1], name="v6")
    assert await c.get_or_compute("k", gate) == "old"
    assert gate.calls == 1
    assert_stats(b, shared_hits=1, remote_waits=1, shared_misses=0)
    assert_stats(c, shared_hits=1, shared_misses=0)


async def test_a_pooled_connection_the_server_closed_costs_a_hit_nothing(
    make_tier: Callable[..., RedisTier], control: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # Redis's idle `timeout` (or a restart) closes connections that sit in the pool; with
    # redis-py 8 the next command on one fails, which cost a shared error, a load of a
    # value Redis holds, and an outage in the log. The acquire is sent once more instead.
    caplog.set_level(logging.WARNING, logger="cachekit.redis")
    loaded = AsyncCache[int, str](ttl=60, shared=make_tier(), name="idle")
    for key in range(4):
        await loaded.get_or_compute(key, counting()(key))
    cache = AsyncCache[int, str](ttl=60, shared=make_tier(), name="idle")
    load = counting()
    assert await cache.get_or_compute(0, load(0)) == "value-0"  # its connection, pooled
    assert await control.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    for key in range(1, 4):
        assert await cache.get_or_compute(key, load(key)) == f"value-{key}"
    assert load.calls == 0
    assert_stats(cache, shared_hits=4, shared_errors=0)
    assert not any("Redis failed" in r.getMessage() for r in caplog.records)


class _LostFirstReply(Redis):
    """Sends every acquire twice, answering with the second reply: as a client that
    retries does when the first reply is lost after Redis ran the command."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        reply = await super().execute_command(*args, **options)
        if args[0] == "SET" and b"NX" in args:
            reply = await super().execute_command(*args, **options)
        return reply


@pytest.mark.timeout(10)  # without the fix: the leader waits ~20 s for its own lock to lapse
async def test_an_acquire_sent_again_after_a_lost_reply_finds_its_lock_ours(
    redis_server: RedisServer, control: Redis
) -> None:
    client = _LostFirstReply.from_url(redis_server.url)
    tier = RedisTier(client, namespace="t", secret=SECRET, op_timeout=5.0, lock_lease=30.0)
    cache = AsyncCache[str, str](ttl=60, shared=tier, name="lost")
    try:
        load = counting()
        assert await cache.get_or_compute("k", load("k")) == "value-k"
        assert load.calls == 1
        assert_stats(cache, shared_misses=1, remote_waits=0, lock_takeovers=0)
        assert (await control.get(tier.key_of("lost", "k")) or b"").startswith(b"ck")
        # and as the script of Redis before 7.0 does it
        tier._native_acquire = False
        tier._scripts["acquire"] = _twice(tier._scripts["acquire"])
        assert await cache.get_or_compute("j", load("j")) == "value-j"
        assert load.calls == 2
        assert_stats(cache, shared_misses=2, remote_waits=0, lock_takeovers=0)
    finally:
        await tier.aclose()
        await client.aclose()


def _twice(script: Any) -> Any:
    async def sent_twice(**kwargs: Any) -> Any:
        await script(**kwargs)
        return await script(**kwargs)

    return sent_twice


async def test_a_waiter_gives_up_after_wait_timeout_plus_one_lease_and_loads_itself(
    make_tier: Callable[..., RedisTier],
) -> None:
    slow = Gate("slow")
    a = AsyncCache[str, str](ttl=60, shared=make_tier(lock_lease=0.2), name="wt")
    b = AsyncCache[str, str](ttl=60, shared=make_tier(lock_lease=0.2, wait_timeout=0.2), name="wt")
    holder = asyncio.create_task(a.get_or_compute("k", slow))
    await slow.started.wait()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await b.get_or_compute("k", counting(lambda k: "own")("k")) == "own"
    assert 0.4 <= loop.time() - started < 2.0
    assert_stats(b, remote_waits=1, shared_misses=0, shared_hits=0, lock_takeovers=0)
    slow.release.set()
    assert await holder == "slow"


async def test_many_callers_on_many_keys_in_two_workers_load_each_key_once(
    make_tier: Callable[..., RedisTier],
) -> None:
    calls: dict[int, int] = {}

    async def load(key: int) -> int:
        calls[key] = calls.get(key, 0) + 1
        await asyncio.sleep(0.05)
        return key * 10

    caches = [AsyncCache[int, int](ttl=60, shared=make_tier(), name="many") for _ in range(2)]
    results = await asyncio.gather(
        *(c.get_or_compute(i % 30, lambda i=i: load(i % 30)) for i in range(300) for c in caches)
    )
    assert results == [(i % 30) * 10 for i in range(300) for _ in caches]
    assert calls == dict.fromkeys(range(30), 1)
    stats = [c.stats() for c in caches]
    assert total(stats, "shared_misses") == 30
    assert total(stats, "shared_hits") == 30


async def test_five_thousand_cold_keys_through_a_pool_of_ten(redis_server: RedisServer) -> None:
    client = Redis(connection_pool=ConnectionPool.from_url(redis_server.url, max_connections=10))
    await client.flushall()
    tier = RedisTier(client, namespace="pool", secret=SECRET, op_timeout=10.0)
    cache = AsyncCache[int, int](ttl=60, maxsize=None, shared=tier, name="cold")

    async def load(key: int) -> int:
        await asyncio.sleep(0.01)
        return -key

    try:
        async with asyncio.timeout(60):
            results = await asyncio.gather(
                *(cache.get_or_compute(i, lambda i=i: load(i)) for i in range(5000))
            )
        assert results == [-i for i in range(5000)]
        assert_stats(cache, misses=5000, shared_misses=5000, shared_errors=0)
        assert await client.dbsize() == 5000  # every value, and no lock left behind
    finally:
        await tier.aclose()
        await client.aclose(close_connection_pool=True)


# ---------------------------------------------------------------------- invalidation


async def test_invalidate_during_a_load_means_its_value_is_never_stored(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier()
    a = AsyncCache[str, str](ttl=60, shared=tier, name="inv")
    old = Gate("old")
    loading = asyncio.create_task(a.get_or_compute("k", old))
    await old.started.wait()
    assert a.invalidate("k") is True
    await tier.settle()
    old.release.set()
    assert await loading == "old"  # its own caller still gets the value it asked for
    await tier.settle()
    assert await control.exists(tier.key_of("inv", "k")) == 0
    assert "k" not in a
    b = AsyncCache[str, str](ttl=60, shared=make_tier(), name="inv")
    assert await b.get_or_compute("k", counting(lambda k: "new")("k")) == "new"
    assert await a.get_or_compute("k", counting(lambda k: "newer")("k")) == "new"


async def test_a_waiter_of_an_invalidated_load_loads_afresh(
    make_tier: Callable[..., RedisTier],
) -> None:
    a = AsyncCache[str, str](ttl=60, shared=make_tier(), name="inv2")
    b = AsyncCache[str, str](ttl=60, shared=make_tier(), name="inv2")
    old = Gate("old")
    loading = asyncio.create_task(a.get_or_compute("k", old))
    await old.started.wait()
    waiting = asyncio.create_task(b.get_or_compute("k", counting(lambda k: "fresh")("k")))
    await until(lambda: b.stats().remote_waits == 1)
    a.invalidate("k")
    assert await waiting == "fresh"  # woken by the broadcast, it took the lock itself
    old.release.set()
    assert await loading == "old"
    assert_stats(b, shared_misses=1, lock_takeovers=0)


async def test_invalidate_and_clear_reach_every_workers_l1(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    a = AsyncCache[int, str](ttl=60, shared=make_tier(), name="bc")
    b = AsyncCache[int, str](ttl=60, shared=make_tier(), name="bc")
    other = AsyncCache[int, str](ttl=60, shared=make_tier(), name="bc.x")  # "bc" + ".x"
    for key in range(3):
        await a.get_or_compute(key, counting()(key))
        await b.get_or_compute(key, counting()(key))
        await other.get_or_compute(key, counting()(key))
    a.invalidate(0)
    await until(lambda: 0 not in b)
    assert 1 in b
    b.clear()
    await until(lambda: len(a) == 0)
    assert len(other) == 3  # another cache's prefix is untouched, in L1 and in Redis
    await b._shared.tier.settle()  # type: ignore[union-attr]
    keys = sorted(k.decode() for k in await control.keys("*"))
    assert len(keys) == 3 and all(k.startswith("ck:t:bc.x:{") for k in keys)


async def test_set_writes_through_and_other_workers_drop_their_copy(
    make_tier: Callable[..., RedisTier],
) -> None:
    tier = make_tier()
    a = AsyncCache[str, str](ttl=60, shared=tier, name="set")
    b = AsyncCache[str, str](ttl=60, shared=make_tier(), name="set")
    await b.get_or_compute("k", counting(lambda k: "old")("k"))
    a.set("k", "new")
    await until(lambda: "k" not in b)
    assert await b.get_or_compute("k", counting(lambda k: "loaded")("k")) == "new"
    b.invalidate("k")
    await until(lambda: "k" not in a)  # the writer's own copy goes too
    with pytest.raises(TypeError, match="argument of type 'object' has none"):
        a.set(object(), "x")  # type: ignore[arg-type]
    assert len(a) == 0  # the refused set() stored nothing


async def test_invalidation_reaches_another_process_within_100_ms(
    redis_server: RedisServer, control: Redis, make_tier: Callable[..., RedisTier]
) -> None:
    import time

    watcher = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.redis_worker", "watch", redis_server.url, cwd=ROOT
    )
    try:
        assert await control.blpop(["ready"], timeout=20) is not None
        cache = AsyncCache[int, str](ttl=60, shared=make_tier(namespace="fleet"), name="watch")
        started = time.monotonic()
        cache.invalidate(1)
        reply = await control.blpop(["dropped"], timeout=5)
        assert reply is not None
        assert float(reply[1]) - started < 0.1
    finally:
        if watcher.returncode is None:
            watcher.kill()
        await watcher.wait()


@pytest.mark.timeout(60)
async def test_two_loops_in_two_threads_share_wait_and_invalidate_through_one_tier(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    import threading

    tier = make_tier()
    cache = AsyncCache[str, str](ttl=60, shared=tier, name="threads")
    peer_tier = make_tier()  # another worker, on this loop
    peer = AsyncCache[str, str](ttl=60, shared=peer_tier, name="threads")
    await cache.get_or_compute("k", counting()("k"))  # the tier's first loop: this one
    gate = Gate("from the peer")
    steps = {name: threading.Event() for name in ("loaded", "peer loading", "waiting", "go")}
    result: dict[str, Any] = {}

    async def second_loop() -> None:
        # A load on this loop is shared with the fleet...
        result["j"] = await cache.get_or_compute("j", counting(lambda k: "from loop 2")("j"))
        steps["loaded"].set()
        await asyncio.to_thread(steps["peer loading"].wait)
        # ...a wait on this loop is woken by the peer's load (a probation is 10 s here)...
        async with asyncio.timeout(5):
            waiting = asyncio.ensure_future(cache.get_or_compute("w", counting()("w")))
            steps["waiting"].set()
            result["w"] = await waiting
        # ...and an invalidation from this loop reaches Redis and every worker's L1.
        await asyncio.to_thread(steps["go"].wait)
        cache.invalidate("k")
        await tier.settle()

    thread = threading.Thread(target=lambda: asyncio.run(second_loop()))
    thread.start()
    try:
        await asyncio.to_thread(steps["loaded"].wait, 10)
        assert result["j"] == "from loop 2"
        assert await peer.get_or_compute("j", counting()("j")) == "from loop 2"  # shared
        loading = asyncio.create_task(peer.get_or_compute("w", gate))
        await gate.started.wait()
        steps["peer loading"].set()
        await asyncio.to_thread(steps["waiting"].wait, 10)
        await until(lambda: cache.stats().remote_waits == 1)
        gate.release.set()
        assert await loading == "from the peer"
        assert await peer.get_or_compute("k", counting()("k")) == "value-k"
        steps["go"].set()
        async with asyncio.timeout(5):
            await until(lambda: "k" not in peer)  # the broadcast of loop 2's invalidation
    finally:
        for step in steps.values():
            step.set()
        await asyncio.to_thread(thread.join, 10)
    assert result["w"] == "from the peer"
    assert await control.exists(tier.key_of("threads", "k")) == 0
    assert_stats(cache, shared_misses=2, remote_waits=1, lock_takeovers=0)  # k, j; w woken
    assert_stats(peer, shared_hits=2, shared_misses=1)  # j, k; w
    # Loop 2 has ended: its lane serves the next loop instead of a new one.
    lanes = list(tier._lanes)
    assert len(lanes) == 1
    await asyncio.to_thread(asyncio.run, cache.get_or_compute("q", counting()("q")))
    assert tier._lanes == lanes
    assert await control.exists(tier.key_of("threads", "q")) == 1


@pytest.mark.timeout(60)
async def test_a_read_on_one_loop_waits_for_an_invalidation_sent_from_another(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    import threading

    tier = make_tier()
    cache = AsyncCache[str, str](ttl=60, shared=tier, name="order2")
    await cache.get_or_compute("k", counting(lambda k: "old")("k"))
    invalidated, go = threading.Event(), threading.Event()

    async def second_loop() -> None:
        await cache.get_or_compute("j", counting()("j"))  # this loop's lane is listening
        cache.invalidate("k")  # its DEL is a task of this loop...
        invalidated.set()
        go.wait(10)  # ...which cannot run until the other loop reads
        await tier.settle()

    thread = threading.Thread(target=lambda: asyncio.run(second_loop()))
    thread.start()
    try:
        await asyncio.to_thread(invalidated.wait, 10)
        read = asyncio.create_task(cache.get_or_compute("k", counting(lambda k: "new")("k")))
        done, _ = await asyncio.wait([read], timeout=0.3)
        assert not done  # waiting for the other loop's DEL, not reading what it deletes
        go.set()
        async with asyncio.timeout(5):
            assert await read == "new"
    finally:
        go.set()
        await asyncio.to_thread(thread.join, 10)


@pytest.mark.timeout(60)
async def test_aclose_closes_the_lane_of_a_loop_running_in_another_thread(
    redis_server: RedisServer, control: Redis
) -> None:
    import threading

    tier = RedisTier.from_url(redis_server.url, namespace="t", secret=SECRET, op_timeout=5.0)
    cache = AsyncCache[str, str](ttl=60, shared=tier, name="close2")
    await cache.get_or_compute("k", counting()("k"))
    shared, closed = threading.Event(), threading.Event()
    after: list[str] = []

    async def second_loop() -> None:
        await cache.get_or_compute("j", counting()("j"))
        shared.set()
        await asyncio.to_thread(closed.wait, 10)
        # Closed from the first loop: this loop's calls stay in-process now.
        after.append(await cache.get_or_compute("q", counting()("q")))

    thread = threading.Thread(target=lambda: asyncio.run(second_loop()))
    thread.start()
    try:
        await asyncio.to_thread(shared.wait, 10)

        async def subscribers() -> int:
            return sum(int(c.get("sub", 0)) > 0 for c in await control.client_list())

        await until(lambda: len(tier._lanes) == 1 and tier._lanes[0]._listening)
        assert await subscribers() == 2  # one per loop
        async with asyncio.timeout(10):
            await tier.aclose()
        assert all(lane._closed for lane in tier._everyone())
        assert await subscribers() == 0
    finally:
        closed.set()
        await asyncio.to_thread(thread.join, 10)
    assert after == ["value-q"]
    assert await control.exists(tier.key_of("close2", "q")) == 0  # never shared


@pytest.mark.timeout(60)
async def test_a_loop_closed_without_cancelling_its_tasks_leaves_a_lane_the_next_loop_reuses(
    make_tier: Callable[..., RedisTier], control: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    from .conftest import LOOP_ERRORS

    unraisable: list[BaseException | None] = []  # (the closed loop's sockets warn on collection)
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(u.exc_value))
    tier = make_tier()
    cache = AsyncCache[str, str](ttl=60, shared=tier, name="rude")
    await cache.get_or_compute("a", counting()("a"))

    def rude() -> None:  # run_until_complete, then close: the lane's listener still pending
        loop = asyncio.new_event_loop()
        loop.run_until_complete(cache.get_or_compute("b", counting()("b")))
        loop.close()

    await asyncio.to_thread(rude)
    assert await asyncio.to_thread(asyncio.run, cache.get_or_compute("c", counting()("c")))
    assert len(tier._lanes) == 1  # the closed loop's lane served the next one
    other = AsyncCache[str, str](ttl=60, shared=make_tier(), name="rude")
    for key in "bc":  # both loops shared
        assert await other.get_or_compute(key, counting(lambda k: "not shared")(key)) != (
            "not shared"
        )
    # The old listener's coroutine, collected, is closed without awaiting anything (it
    # used to raise "no running event loop" from its finally); what remains is asyncio's
    # own report of a task destroyed with the loop the caller closed.
    gc.collect()
    errors = [str(e.get("message")) for e in LOOP_ERRORS]
    assert all(m == "Task was destroyed but it is pending!" for m in errors), errors
    LOOP_ERRORS.clear()
    assert [e for e in unraisable if not isinstance(e, ResourceWarning)] == []


# ---------------------------------------------------------------------- processes


async def test_four_processes_of_250_callers_on_20_cold_keys_load_20_times(
    redis_server: RedisServer, control: Redis
) -> None:
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.redis_worker",
            "stampede",
            redis_server.url,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    try:
        for _ in workers:
            assert await control.blpop(["ready"], timeout=20) is not None
        await control.rpush("go", *["go"] * len(workers))
        outputs = [await w.communicate() for w in workers]
    finally:
        for w in workers:
            if w.returncode is None:
                w.kill()
                await w.wait()
    assert [w.returncode for w in workers] == [0] * 4
    stats = [json.loads(out) for out, _ in outputs]
    assert int(await control.get("loads") or 0) == 20
    assert total(stats, "shared_misses") == 20
    assert total(stats, "shared_hits") == 60
    assert total(stats, "shared_errors") == 0
    assert [s["misses"] for s in stats] == [20] * 4
    assert [s["coalesced"] for s in stats] == [230] * 4


async def test_a_loader_killed_mid_load_is_taken_over_once(
    redis_server: RedisServer, control: Redis, make_tier: Callable[..., RedisTier]
) -> None:
    loader = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.redis_worker", "hang", redis_server.url, cwd=ROOT
    )
    try:
        assert await control.blpop(["started"], timeout=20) is not None

        async def load() -> str:
            await control.incr("loads")
            return "taken over"

        caches = [
            AsyncCache[str, str](
                ttl=60, shared=make_tier(namespace="fleet", lock_lease=0.5), name="takeover"
            )
            for _ in range(3)
        ]
        callers = [
            asyncio.create_task(cache.get_or_compute("k", load))
            for cache in caches
            for _ in range(20)
        ]
        await until(lambda: all(c.stats().remote_waits == 1 for c in caches))
        loader.kill()
        await loader.wait()
        async with asyncio.timeout(0.5 + 0.5 + 3.0):  # one lease, wait_timeout, slack
            results = await asyncio.gather(*callers)
    finally:
        if loader.returncode is None:
            loader.kill()
            await loader.wait()
    assert results == ["taken over"] * 60
    assert int(await control.get("loads") or 0) == 2
    stats = [c.stats() for c in caches]
    assert total(stats, "lock_takeovers") == 1
    assert total(stats, "shared_misses") == 1
    assert total(stats, "shared_hits") == 2


# ---------------------------------------------------------------------- failure


async def test_redis_killed_then_restarted_degrades_and_resumes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = RedisServer(require_binary())
    server.start()
    tiers = [
        RedisTier.from_url(server.url, namespace="d", secret=SECRET, op_timeout=0.25, cooldown=0.1)
        for _ in range(2)
    ]
    try:
        a = AsyncCache[int, str](ttl=60, shared=tiers[0], name="down")
        b = AsyncCache[int, str](ttl=60, shared=tiers[1], name="down")
        await a.get_or_compute(0, counting()(0))
        assert await b.get_or_compute(0, counting()(0)) == "value-0"
        assert_stats(b, shared_hits=1)

        server.kill()
        caplog.set_level(logging.WARNING, logger="cachekit.redis")
        load = counting()
        loop = asyncio.get_running_loop()
        for key in range(1, 41):
            started = loop.time()
            assert await a.get_or_compute(key, load(key)) == f"value-{key}"
            assert loop.time() - started < 0.25 + 0.2  # op_timeout, and slack
        assert load.calls == 40
        assert a.stats().shared_errors == 40  # one per call: failed, or skipped in cool-down
        failed = [r for r in caplog.records if "Redis failed" in r.getMessage()]
        assert len(failed) == 1  # one warning per outage, not per call

        server.start()
        hits = b.stats().shared_hits
        key = 100
        async with asyncio.timeout(10):
            while b.stats().shared_hits == hits:
                key += 1
                await asyncio.sleep(0.05)
                await a.get_or_compute(key, counting()(key))
                await b.get_or_compute(key, counting()(key))
        assert any("answers again" in r.getMessage() for r in caplog.records)
    finally:
        for tier in tiers:
            await tier.aclose()
        server.stop()


async def test_an_invalidation_that_missed_redis_is_sent_when_redis_answers(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier(op_timeout=0.1, cooldown=0.05)
    a = AsyncCache[str, str](ttl=60, shared=tier, name="unsent")
    b = AsyncCache[str, str](ttl=60, shared=make_tier(), name="unsent")
    # The warm-up goes through b's tier (the default op_timeout): on a starved machine a's
    # 0.1 s could time out here, and that is not what this test is about. a then holds the
    # key either way, read from Redis or loaded itself; only its errors from here count.
    assert await b.get_or_compute("k", counting()("k")) == "value-k"
    assert await a.get_or_compute("k", counting()("k")) == "value-k"
    errors = a.stats().shared_errors
    await control.execute_command("CLIENT", "PAUSE", 500, "ALL")  # Redis stops answering
    try:
        a.invalidate("k")
        await until(lambda: a.stats().shared_errors == errors + 1)  # it timed out
        assert "k" in b  # not told yet: the invalidation is still to be sent
    finally:
        await control.execute_command("CLIENT", "UNPAUSE")
    await until(lambda: "k" not in b)  # sent again once Redis answers
    assert await control.exists(tier.key_of("unsent", "k")) == 0
    assert a.stats().shared_errors == errors + 1  # counted once, however many tries
    assert not tier._unsent


async def test_a_newer_command_replaces_one_that_missed_redis(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    # (The resender's first try comes a cooldown later: no second failure, no open circuit,
    # which would turn the set() into an invalidation too.)
    tier = make_tier(op_timeout=0.1, cooldown=2.0)
    a = AsyncCache[str, str](ttl=60, shared=tier, name="newer")
    await a.get_or_compute("k", counting()("k"))
    await control.execute_command("CLIENT", "PAUSE", 500, "ALL")
    try:
        a.invalidate("k")
        await until(lambda: a.stats().shared_errors == 1)
    finally:
        await control.execute_command("CLIENT", "UNPAUSE")
    a.set("k", "newer")  # sent before the resender's next try: the invalidation is dropped
    await tier.settle()
    await until(lambda: not tier._unsent)
    other = AsyncCache[str, str](ttl=60, shared=make_tier(), name="newer")
    assert await other.get_or_compute("k", counting()("k")) == "newer"


async def test_a_stalled_redis_costs_a_caller_at_most_op_timeout(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    cache = AsyncCache[int, str](ttl=60, shared=make_tier(op_timeout=0.1), name="slow")
    await cache.get_or_compute(0, counting()(0))  # connected and subscribed
    await control.execute_command("CLIENT", "PAUSE", 300, "ALL")
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await cache.get_or_compute(1, counting()(1)) == "value-1"
        assert loop.time() - started < 0.1 + 0.2  # op_timeout, and slack for a busy CPU
        assert_stats(cache, shared_errors=1)
    finally:
        await control.execute_command("CLIENT", "UNPAUSE")


@pytest.mark.timeout(30)
async def test_a_silent_subscription_is_noticed_within_a_few_op_timeouts_and_l1_resynced(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier(op_timeout=0.1)
    cache = AsyncCache[int, str](ttl=60, shared=tier, name="silent")
    await cache.get_or_compute(1, counting()(1))
    # Redis answers nobody for a while, the subscriber's PING included: it may have missed
    # invalidations, so once it has resubscribed its L1 starts afresh.
    loop = asyncio.get_running_loop()
    await control.execute_command("CLIENT", "PAUSE", 1500, "ALL")
    paused = loop.time()
    async with asyncio.timeout(10):
        await until(lambda: not tier._listening)
        noticed = loop.time() - paused
        await until(lambda: tier._listening and 1 not in cache)
    assert noticed < 4 * 0.1 + 0.5  # 4 op_timeouts, and slack (it took 5-10 s)


async def test_degrade_on_a_dead_redis_answers_in_process(
    make_tier: Callable[..., RedisTier],
) -> None:
    from .redis_server import free_port

    tier = make_tier(url=f"redis://127.0.0.1:{free_port()}/0", op_timeout=0.25)
    cache = AsyncCache[int, str](ttl=60, shared=tier, name="dead")
    assert await cache.get_or_compute(1, counting()(1)) == "value-1"
    assert await cache.get_or_compute(1, counting()(1)) == "value-1"  # L1 still works
    assert_stats(cache, hits=1, misses=1, shared_errors=1)


async def test_raise_mode_gives_the_caller_the_redis_error_and_caches_nothing(
    make_tier: Callable[..., RedisTier],
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from .redis_server import free_port

    tier = make_tier(url=f"redis://127.0.0.1:{free_port()}/0", on_error="raise")
    cache = AsyncCache[int, str](ttl=60, negative_ttl=60, shared=tier, name="dead")
    load = counting()
    for _ in range(2):
        with pytest.raises(RedisConnectionError):
            await cache.get_or_compute(1, load(1))
    assert load.calls == 0
    assert len(cache) == 0


# ---------------------------------------------------------------------- security


_NO_EXPIRY = bytes(8)  # the header's expiry field: none


class _Touch:
    """Unpickling this creates a file: what a forged pickle in Redis could do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda body: body, id="raw-pickle"),
        pytest.param(lambda body: b"ck\x02v\x00" + _NO_EXPIRY + body, id="unsigned"),
        pytest.param(lambda body: b"ck\x02v\x01" + _NO_EXPIRY + b"\0" * 32 + body, id="bad-mac"),
        pytest.param(lambda body: b"ck\x02v\x01" + _NO_EXPIRY + b"\0" * 7, id="truncated"),
        pytest.param(
            lambda body: b"ck\x09v\x01" + _NO_EXPIRY + b"\0" * 32 + body, id="unknown-version"
        ),
    ],
)
async def test_a_tampered_payload_is_a_miss_and_never_unpickled(
    make_tier: Callable[..., RedisTier],
    control: Redis,
    tmp_path: Path,
    forge: Callable[[bytes], bytes],
) -> None:
    marker = tmp_path / "pwned"
    tier = make_tier(secret=b"s" * 32)
    await control.set(tier.key_of("sec", "k"), forge(pickle.dumps(_Touch(str(marker)))))
    cache = AsyncCache[str, str](ttl=60, shared=tier, name="sec")
    assert await cache.get_or_compute("k", counting()("k")) == "value-k"
    assert not marker.exists()
    assert_stats(cache, shared_errors=1, shared_misses=1, shared_hits=0)
    other = AsyncCache[str, str](ttl=60, shared=make_tier(secret=b"s" * 32), name="sec")
    assert await other.get_or_compute("k", counting()("other")) == "value-k"  # replaced


async def test_a_payload_signed_for_another_key_is_rejected(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier(secret=b"s" * 32)
    cache = AsyncCache[str, str](ttl=60, shared=tier, name="sec")
    await cache.get_or_compute("admin", counting(lambda k: "secret")("admin"))
    await control.copy(tier.key_of("sec", "admin"), tier.key_of("sec", "guest"))
    other = AsyncCache[str, str](ttl=60, shared=make_tier(secret=b"s" * 32), name="sec")
    assert await other.get_or_compute("guest", counting()("guest")) == "value-guest"
    assert_stats(other, shared_errors=1)


async def test_the_default_tier_refuses_to_unpickle_without_a_secret(
    redis_server: RedisServer, control: Redis, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    forged = b"ck\x02v\x00" + _NO_EXPIRY + pickle.dumps(_Touch(str(marker)))
    try:
        tier = RedisTier.from_url(redis_server.url, namespace="t")
    except ValueError as exc:
        refused: ValueError | None = exc
    else:  # built: it reads what anyone wrote at a key anyone can compute
        refused = None
        await control.set(tier.key_of("sec", "k"), forged)
        cache = AsyncCache[str, str](ttl=60, shared=tier, name="sec")
        await cache.get_or_compute("k", counting()("k"))
        await tier.aclose()
    assert not marker.exists()
    assert refused is not None
    assert str(refused).startswith("secret is required with the default (pickle) serializer")
    assert "serializer=JSONSerializer()" in str(refused)
    assert "serializer=insecure_pickle" in str(refused)
    with pytest.raises(ValueError, match=r"^secret is required with serializer=<module 'pickle'"):
        RedisTier(Redis.from_url(redis_server.url), serializer=pickle)


async def test_unsigned_pickle_is_opted_into_by_name_and_logged_once_at_construction(
    make_tier: Callable[..., RedisTier], caplog: pytest.LogCaptureFixture
) -> None:
    from cachekit.redis import insecure_pickle

    caplog.set_level(logging.WARNING, logger="cachekit.redis")
    tier = make_tier(serializer=insecure_pickle)
    a = AsyncCache[str, str](ttl=60, shared=tier, name="unsigned")
    b = AsyncCache[str, str](ttl=60, shared=make_tier(serializer=insecure_pickle), name="unsigned")
    await a.get_or_compute("k", counting()("k"))
    assert await b.get_or_compute("k", counting()("other")) == "value-k"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2  # one per tier built, none per call
    assert all("unpickles unsigned payloads" in w and "runs code" in w for w in warnings)


async def test_json_without_a_secret_is_logged_once_and_a_forged_pickle_runs_no_code(
    make_tier: Callable[..., RedisTier],
    control: Redis,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="cachekit.redis")
    marker = tmp_path / "pwned"
    tier = make_tier(serializer=JSONSerializer())
    assert ["forge values and cached failures" in r.getMessage() for r in caplog.records] == [True]
    key = tier.key_of("json", "k")
    await control.set(key, b"ck\x02v\x00" + _NO_EXPIRY + pickle.dumps(_Touch(str(marker))))
    cache = AsyncCache[str, str](ttl=60, shared=tier, name="json")
    assert await cache.get_or_compute("k", counting()("k")) == "value-k"
    assert not marker.exists()
    assert_stats(cache, shared_errors=1, shared_misses=1)


async def test_a_rotated_secret_is_shared_both_ways_during_a_rolling_deploy(
    make_tier: Callable[..., RedisTier],
) -> None:
    old, new = b"old-secret-0123456789", b"new-secret-0123456789"
    # Mid-deploy: workers still signing with the old secret accept the new one, and workers
    # already signing with the new one accept the old: nobody deletes anybody's entries.
    before = AsyncCache[int, str](ttl=60, shared=make_tier(secret=[old, new]), name="rot")
    after = AsyncCache[int, str](ttl=60, shared=make_tier(secret=[new, old]), name="rot")
    load = counting()
    assert await before.get_or_compute(1, load(1)) == "value-1"
    assert await after.get_or_compute(2, load(2)) == "value-2"
    assert await after.get_or_compute(1, load(1)) == "value-1"
    assert await before.get_or_compute(2, load(2)) == "value-2"
    assert load.calls == 2
    for cache in (before, after):
        assert_stats(cache, shared_hits=1, shared_misses=1, shared_errors=0)
    done = AsyncCache[int, str](ttl=60, shared=make_tier(secret=new), name="rot")
    assert await done.get_or_compute(2, load(2)) == "value-2"  # signed with the new one
    assert_stats(done, shared_hits=1, shared_errors=0)


async def _stored(control: Redis, tier: RedisTier, name: str, key: Any) -> Any:
    """What Redis holds for `key` of cache `name`: the unpickled value, or None."""
    from cachekit._shared import unseal

    redis_key = tier.key_of(name, key)
    payload = await control.get(redis_key)
    if payload is None:
        return None
    return pickle.loads(unseal(SECRET, redis_key.encode(), payload)[2])


@pytest.mark.parametrize("warm", [False, True], ids=["fresh-tier", "warm-tier"])
async def test_commands_for_one_key_reach_redis_in_the_order_this_process_issued_them(
    make_tier: Callable[..., RedisTier], control: Redis, warm: bool
) -> None:
    # Each command used to be a task of its own, on whichever connection was free: Redis
    # applied them in any order (a fresh tier's set() first waited for a TIME reading).
    rounds = 200 if warm else 15
    shared = make_tier()
    if warm:
        await AsyncCache[str, str](ttl=60, shared=shared, name="order").get_or_compute(
            "warm-up", counting()("warm-up")
        )
    wrong = {"set-invalidate": 0, "set-set": 0, "invalidate-set": 0, "clear-set": 0}
    for i in range(rounds):
        tier = shared if warm else make_tier()
        cache = AsyncCache[str, str](ttl=60, shared=tier, name="order")
        cache.set("k", "v1")
        cache.invalidate("k")
        await tier.settle()
        wrong["set-invalidate"] += await _stored(control, tier, "order", "k") is not None
        cache.set("k", f"v1-{i}")
        cache.set("k", f"v2-{i}")
        await tier.settle()
        wrong["set-set"] += await _stored(control, tier, "order", "k") != f"v2-{i}"
        cache.invalidate("k")
        cache.set("k", f"v3-{i}")
        await tier.settle()
        wrong["invalidate-set"] += await _stored(control, tier, "order", "k") != f"v3-{i}"
        cache.clear()
        cache.set("k", f"v4-{i}")
        await tier.settle()
        wrong["clear-set"] += await _stored(control, tier, "order", "k") != f"v4-{i}"
        if not warm:
            await tier.aclose()
    assert wrong == dict.fromkeys(wrong, 0)


@pytest.mark.timeout(30)
async def test_a_tier_first_used_on_a_short_lived_loop_still_sends_every_invalidation(
    redis_server: RedisServer, control: Redis, make_tier: Callable[..., RedisTier]
) -> None:
    # A warm-up asyncio.run() used the tier first (and invalidated a key as it ended);
    # the service then runs on its main loop. Neither invalidation may be lost.
    tier = RedisTier.from_url(redis_server.url, namespace="t", secret=SECRET, op_timeout=5.0)
    cache = AsyncCache[str, str](ttl=60, shared=tier, name="warm")

    async def warm_up() -> None:
        await cache.get_or_compute("k", counting(lambda k: "v1")("k"))
        await cache.get_or_compute("j", counting(lambda k: "j1")("j"))
        await cache.get_or_compute("q", counting(lambda k: "q1")("q"))
        await cache.get_or_compute("m", counting(lambda k: "m1")("m"))
        cache.invalidate("j")  # still in flight when asyncio.run() ends

    def warm_up_thread() -> None:
        asyncio.run(warm_up())
        cache.invalidate("q")  # no loop runs the tier now: queued for the next one

    await asyncio.to_thread(warm_up_thread)
    try:
        other = AsyncCache[str, str](ttl=60, shared=make_tier(), name="warm")
        assert await other.get_or_compute("k", counting(lambda k: "other")("k")) == "v1"
        other.invalidate("m")  # while no loop listens for the tier: unheard by it...
        await other._shared.tier.settle()  # type: ignore[union-attr]
        cache.invalidate("k")  # from the main loop
        async with asyncio.timeout(5):
            await until(lambda: "k" not in other)
            await tier.settle()
            while await control.exists(*(tier.key_of("warm", key) for key in "kjq")):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            await until(lambda: "m" not in cache)  # ...so its L1 starts afresh once it listens
        assert await cache.get_or_compute("k", counting(lambda k: "v2")("k")) == "v2"
        assert await other.get_or_compute("k", counting(lambda k: "other")("k")) == "v2"
    finally:
        await tier.aclose()


async def test_an_invalidation_by_an_equal_key_reaches_redis(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    from decimal import Decimal

    tier = make_tier()
    a = AsyncCache[Any, str](ttl=60, shared=tier, name="equal")
    await a.get_or_compute(Decimal("1"), counting()(1))
    assert a.invalidate(Decimal("1.0")) is True  # the same dict key here...
    await tier.settle()
    assert await control.exists(tier.key_of("equal", Decimal("1"))) == 0  # ...and in Redis


async def test_one_key_of_the_wrong_redis_type_is_not_an_outage(
    make_tier: Callable[..., RedisTier], control: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cachekit.redis")
    tier = make_tier()
    cache = AsyncCache[str, str](ttl=60, shared=tier, name="wrongtype")
    for n in range(5):  # (an invalidation would delete what is there, of any type)
        await control.lpush(tier.key_of("wrongtype", f"bad{n}"), "someone else's list")
        assert await cache.get_or_compute(f"bad{n}", counting()(n)) == f"value-{n}"
    assert await cache.get_or_compute("good", counting()("good")) == "value-good"
    assert_stats(cache, shared_misses=1, shared_errors=5)  # only the bad key's calls
    assert not any("Redis failed" in r.getMessage() for r in caplog.records)
    other = AsyncCache[str, str](ttl=60, shared=make_tier(), name="wrongtype")
    assert await other.get_or_compute("good", counting()("other")) == "value-good"


async def test_a_payload_over_max_value_bytes_is_never_deserialized(
    make_tier: Callable[..., RedisTier], control: Redis, tmp_path: Path
) -> None:
    # Even one correctly signed (a worker with a larger max_value_bytes, or the secret's
    # holder): its size is checked before the signature and the unpickling.
    marker = tmp_path / "unpickled"
    tier = make_tier(max_value_bytes=1 << 16)
    key = tier.key_of("huge", "k")
    body = pickle.dumps((_Touch(str(marker)), b"x" * (1 << 20)))
    await control.set(key, seal(SECRET, key.encode(), VALUE, 0, body))
    cache = AsyncCache[str, str](ttl=60, shared=tier, name="huge")
    assert await cache.get_or_compute("k", counting()("k")) == "value-k"
    assert not marker.exists()
    assert_stats(cache, shared_errors=1, shared_misses=1)


async def test_repeated_warnings_are_logged_once_a_minute_per_kind_and_counted(
    make_tier: Callable[..., RedisTier], control: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    from .conftest import FakeClock

    caplog.set_level(logging.WARNING, logger="cachekit.redis")
    clock = FakeClock()
    tier = make_tier()
    tier._notices.clock = clock
    cache = AsyncCache[int, Any](ttl=60, shared=tier, name="noisy")

    async def unpicklable() -> Any:
        return lambda: None

    for key in range(5):
        await control.set(tier.key_of("noisy", -key - 1), b"forged")
        await cache.get_or_compute(-key - 1, counting()(-key))  # rejected payloads
        await cache.get_or_compute(key, unpicklable)  # values that cannot be pickled
    clock.tick(61)
    await cache.get_or_compute(100, unpicklable)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" ")[1] for line in lines] == ["rejected", "a", "a"], lines
    assert lines[-1].endswith("(4 more not logged since the last)")
    assert_stats(cache, shared_errors=11)  # every one counted


async def test_a_colon_in_a_namespace_or_name_is_refused_so_clears_never_overlap(
    make_tier: Callable[..., RedisTier],
) -> None:
    # Namespace "a:b" with cache "c", and namespace "a" with cache "b:c", shared a prefix:
    # one's clear() deleted the other's entries.
    with pytest.raises(ValueError, match=r"^namespace must be non-empty, without braces, colon"):
        make_tier(namespace="a:b")
    with pytest.raises(ValueError, match=r"^name must be non-empty, without braces, colons"):
        AsyncCache[int, int](ttl=60, shared=make_tier(namespace="a"), name="b:c")


async def test_with_a_secret_an_unsigned_broadcast_is_ignored(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    tier = make_tier()
    cache = AsyncCache[str, str](ttl=60, shared=tier, name="bcast")
    await cache.get_or_compute("k", counting()("k"))
    await cache.get_or_compute("j", counting()("j"))
    base = tier.key_of("bcast", "k").removesuffix(":v")
    await control.publish("ck:t:events", f"i someone {base}")  # forged: drops nobody's L1
    await control.publish("ck:t:events", "c someone ck:t:bcast:")
    other = AsyncCache[str, str](ttl=60, shared=make_tier(), name="bcast")
    other.invalidate("j")  # signed by a holder of the secret: applied...
    await until(lambda: "j" not in cache)
    assert "k" in cache  # ...and heard after the forgeries (one channel keeps its order)


async def test_a_load_publishes_its_end_only_to_the_workers_that_wait_for_it(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    async def publishes() -> int:
        stats = await control.info("commandstats")
        return int(stats.get("cmdstat_publish", {}).get("calls", 0))

    tiers = [make_tier() for _ in range(4)]
    caches = [AsyncCache[int, str](ttl=60, shared=tier, name="quiet") for tier in tiers]
    for cache in caches:
        await cache.get_or_compute(-1, counting()(-1))  # every tier subscribed
    # What every worker would hear: the broadcast channel must carry no load's end.
    broadcast = control.pubsub()
    await broadcast.subscribe("ck:t:events")
    assert (await broadcast.get_message(timeout=1))["type"] == "subscribe"
    before = await publishes()
    for key in range(10):  # nobody waits: nothing to tell the other workers
        await caches[0].get_or_compute(key, counting()(key))
    assert await publishes() == before
    gate = Gate("slow")
    loading = asyncio.create_task(caches[0].get_or_compute(100, gate))
    await gate.started.wait()
    # Two of the three other workers wait (the fourth never asks).
    waiting = [asyncio.create_task(c.get_or_compute(100, counting()(100))) for c in caches[1:3]]
    await until(lambda: all(c.stats().remote_waits == 1 for c in caches[1:3]))
    gate.release.set()
    assert await loading == "slow"
    async with asyncio.timeout(5):  # woken, not timed out (a probation is 1 s)
        assert [await w for w in waiting] == ["slow", "slow"]
    assert await publishes() == before + 2  # one message to each waiting worker
    assert await broadcast.get_message(timeout=0.05) is None
    await broadcast.aclose()
    assert_stats(caches[1], shared_hits=2, lock_takeovers=0)  # (-1 and 100)


async def test_a_crafted_entry_with_an_expiry_redis_refuses_is_deleted_not_restored(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    # While our load runs, someone writes a "ck" payload whose header expiry Redis refuses
    # as a PXAT: the store must not fail half-way (a Lua error after the SET), and what it
    # cannot put back is deleted.
    tier = make_tier()
    cache = AsyncCache[str, str](ttl=60, shared=tier, name="crafted")
    key = tier.key_of("crafted", "k")
    gate = Gate("ours")
    loading = asyncio.create_task(cache.get_or_compute("k", gate))
    await gate.started.wait()
    await control.set(key, b"ck" + bytes((2, ord("v"), 0)) + b"\xff" * 8 + b"junk")
    gate.release.set()
    assert await loading == "ours"
    assert await control.exists(key) == 0
    assert cache.stats().shared_errors == 0


async def test_a_store_that_lost_its_lock_puts_back_what_it_replaced(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    # The store is one SET ... XX GET: when the key no longer holds our lock (another
    # worker's lock after ours lapsed, or a set()'s entry), what it replaced goes back,
    # with its expiry, and our value is not stored.
    tier = make_tier()
    cache = AsyncCache[str, str](ttl=60, shared=tier, name="fence")
    key = tier.key_of("fence", "k")
    gate = Gate("late")
    loading = asyncio.create_task(cache.get_or_compute("k", gate))
    await gate.started.wait()
    await control.set(key, b"lock:someone:1 abc", px=5_000)  # our lock lapsed, taken over
    gate.release.set()
    assert await loading == "late"
    assert await control.get(key) == b"lock:someone:1 abc"
    assert 0 < await control.pttl(key) <= tier._probation_ms  # back for one probation
    assert "k" not in cache  # fenced out: answered, never kept

    other_tier = make_tier()
    other = AsyncCache[str, str](ttl=60, shared=other_tier, name="fence")
    gate = Gate("late")
    loading = asyncio.create_task(cache.get_or_compute("j", gate))
    await gate.started.wait()
    other.set("j", "newer")  # replaces the load's lock: the load can no longer store
    await other_tier.settle()
    written = await control.get(tier.key_of("fence", "j"))
    expiry = await control.pttl(tier.key_of("fence", "j"))
    gate.release.set()
    assert await loading == "late"
    assert await control.get(tier.key_of("fence", "j")) == written
    assert 0 < await control.pttl(tier.key_of("fence", "j")) <= expiry


async def test_a_value_the_serializer_cannot_give_as_bytes_stays_in_process(
    make_tier: Callable[..., RedisTier], control: Redis
) -> None:
    """A serializer may return str (encoded as UTF-8); one that cannot be encoded is a value
    that cannot be shared, like one the serializer refuses: kept in L1, counted, and the
    load's lock released, whether it was loaded or set."""

    class TextSerializer:
        def dumps(self, value: Any) -> str:
            return str(value)

        def loads(self, data: bytes) -> Any:
            return data.decode()

    tier = make_tier(serializer=TextSerializer(), secret=SECRET)
    cache = AsyncCache[str, str](ttl=60, shared=tier, name="text")
    lone = "\ud800"  # a lone surrogate: no UTF-8 encoding
    assert await cache.get_or_compute("loaded", counting(lambda k: lone)("loaded")) == lone
    cache.set("set", lone)
    assert await cache.get_or_compute("plain", counting(lambda k: "ok")("plain")) == "ok"
    await tier.settle()
    assert (cache.get("loaded"), cache.get("set")) == (lone, lone)
    assert await control.keys("*") == [tier.key_of("text", "plain").encode()]  # locks released
    assert_stats(cache, shared_errors=2)
