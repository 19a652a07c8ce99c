"""The shared tier when Redis stalls or dies: SIGSTOP/SIGCONT, kill/restart, DEBUG SLEEP.

Each test runs its own redis-server (so a stalled server disturbs no other test) under a
hard timeout: a regression fails here instead of stalling CI. Where real time cannot be
avoided ("the other worker gets the key within about a second"), the bounds are generous,
and the figure they replace (a full lock lease, a minute of queueing) is far outside them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from redis.asyncio import Connection, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from cachekit import AsyncCache, _redis_lanes
from cachekit.redis import RedisTier

from .conftest import Gate, assert_stats, settle
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


async def until_errors(cache: AsyncCache[Any, Any], count: int) -> None:
    while cache.stats().shared_errors < count:  # noqa: ASYNC110 - a counter, no event
        await asyncio.sleep(0.01)


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


# ---------------------------------------------------------------------- item 4


class LoopLag:
    """The longest the loop went without running a 1 ms ticker: how long it was held."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, loop.time() - before - 0.001)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.mark.timeout(60)
async def test_an_outage_queues_invalidations_bounded_logs_once_and_resends_in_short_steps(
    make_tier: Callable[..., RedisTier],
    server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cachekit._redis_lanes

    monkeypatch.setattr(cachekit._redis_lanes, "_UNSENT_MAX", 2_000)  # the default is 10,000
    caplog.set_level(logging.WARNING, logger="cachekit.redis")
    tier = make_tier(op_timeout=0.1, cooldown=0.05)
    cache = AsyncCache[int, str](ttl=60, maxsize=None, shared=tier, name="flood")
    other = AsyncCache[int, str](ttl=60, maxsize=None, shared=tier, name="calm")
    await warm(cache)
    server.kill()
    async with asyncio.timeout(30):
        for key in range(3):  # the first fail on their own, then the circuit opens
            cache.invalidate(key)
            await tier.settle()
        for key in range(20_000):
            cache.invalidate(key)
        other.invalidate(7)
        other.invalidate(7)  # coalesced: one entry per key
        await settle()  # whatever the calls started has run its first step
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "Redis failed" in lines[0], lines[:5]  # not one per call
    # Bounded: past _UNSENT_MAX the flooded cache's keys became one clear of the cache.
    # (The resender may have one of them in flight: queued or pending, then.)
    queued = {*tier._unsent, *tier._pending}
    assert queued == {"ck:f:flood:", tier.key_of("calm", 7).removesuffix(":v")}
    assert len(tier._background) <= 3  # no task per queued invalidation

    server.start("--enable-debug-command", "yes")
    lag = LoopLag()
    try:
        async with asyncio.timeout(20):
            while tier._unsent or tier._pending:  # noqa: ASYNC110 - the resender's state
                await asyncio.sleep(0.01)
    finally:
        await lag.stop()
    assert lag.worst < 0.05 + 0.1  # the bound (50 ms), and slack for a busy CPU


@pytest.mark.timeout(60)
async def test_invalidations_queued_during_an_outage_are_coalesced_and_all_delivered(
    make_tier: Callable[..., RedisTier],
    server: RedisServer,
    control: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="cachekit.redis")
    a = AsyncCache[int, str](ttl=60, shared=make_tier(op_timeout=0.1, cooldown=0.05), name="q")
    b = AsyncCache[int, str](ttl=60, shared=make_tier(), name="q")
    tier = a._shared.tier  # type: ignore[union-attr]
    for key in range(100):
        await a.get_or_compute(key, value(key))
        assert await b.get_or_compute(key, value("other")) == f"value-{key}"
    with stopped(server):
        async with asyncio.timeout(20):
            for key in range(3):
                a.invalidate(key)
                await until_errors(a, key + 1)
            for _ in range(5):
                for key in range(100):
                    a.invalidate(key)
            await settle()
            assert len(tier._unsent) == 100  # 500 invalidations, one entry per key
            assert len(caplog.records) == 1
            assert all(key in b for key in range(100))  # not told yet
    async with asyncio.timeout(20):
        while len(b):  # noqa: ASYNC110 - another worker's L1
            await asyncio.sleep(0.01)
    assert await control.keys("ck:f:q:*") == []
    # One warning when the outage begins, one when it ends. (With op_timeout 0.1 s, a
    # CPU-starved runner may time out again once Redis is back: each such outage is logged
    # the same way, once and once.)
    messages = [r.getMessage().split(";")[0] for r in caplog.records]
    outages = len(messages) // 2
    assert outages >= 1
    assert (
        messages
        == [
            "cachekit: Redis failed (TimeoutError: )",
            "cachekit: Redis answers again",
        ]
        * outages
    )


# ---------------------------------------------------------------------- item 7


@pytest.mark.timeout(60)
async def test_raise_mode_with_a_hung_redis_fails_every_caller_within_a_bounded_time(
    server: RedisServer,
) -> None:
    # A pool of 10, 1,000 callers: the wait for a connection used to be unbounded, and
    # callers queued behind each other's timeouts (the issue: median 60 s at 5,000).
    tier = RedisTier.from_url(
        server.url,
        namespace="f",
        secret=SECRET,
        max_connections=10,
        on_error="raise",
        op_timeout=0.2,
        cooldown=5.0,
    )
    cache = AsyncCache[int, str](ttl=60, maxsize=None, shared=tier, name="hung")
    loop = asyncio.get_running_loop()
    latencies: list[float] = []

    async def call(key: int) -> BaseException | None:
        started = loop.time()
        try:
            await cache.get_or_compute(key, value(key))
            return None
        except Exception as exc:
            return exc
        finally:
            latencies.append(loop.time() - started)

    try:
        await warm(cache)
        with stopped(server):
            async with asyncio.timeout(30):
                outcomes = await asyncio.gather(*(call(key) for key in range(1000)))
        assert all(isinstance(o, (TimeoutError, RedisError)) for o in outcomes), {
            type(o) for o in outcomes
        }
        assert max(latencies) < 0.2 * 4 + 1.0  # a budget (extended if the loop ran late)
        # The breaker is open: the next caller fails at once, without waiting for Redis.
        started = loop.time()
        with pytest.raises(RedisConnectionError, match="circuit is open"):
            await cache.get_or_compute(5000, value(5000))
        assert loop.time() - started < 0.05
        assert len(cache) == 1  # the warm-up's entry: no failure was cached
    finally:
        await tier.aclose()


@pytest.mark.timeout(60)
async def test_raise_mode_fails_fast_while_redis_is_down_and_shares_again_once_restarted(
    server: RedisServer,
) -> None:
    tier = RedisTier.from_url(
        server.url, namespace="f", secret=SECRET, on_error="raise", op_timeout=0.2, cooldown=0.3
    )
    cache = AsyncCache[int, str](ttl=60, shared=tier, name="down")
    loop = asyncio.get_running_loop()
    try:
        await warm(cache)
        server.kill()
        async with asyncio.timeout(20):
            for key in range(3):  # these find out that Redis is gone
                with pytest.raises(RedisConnectionError):
                    await cache.get_or_compute(key, value(key))
            for key in range(3, 100):  # and these are told at once
                started = loop.time()
                with pytest.raises(RedisConnectionError, match="circuit is open"):
                    await cache.get_or_compute(key, value(key))
                assert loop.time() - started < 0.05
            server.start("--enable-debug-command", "yes")
            while True:  # past the cooldown, the next call tries Redis again
                try:
                    assert await cache.get_or_compute(1000, value(1000)) == "value-1000"
                    break
                except RedisConnectionError:
                    await asyncio.sleep(0.05)
        assert_stats(cache, shared_misses=2)  # the warm-up's, and this one's
    finally:
        await tier.aclose()


@pytest.mark.timeout(30)
async def test_a_key_whose_invalidation_waits_to_be_resent_is_not_read_from_redis(
    make_tier: Callable[..., RedisTier], server: RedisServer
) -> None:
    tier = make_tier(op_timeout=0.1, cooldown=1.0)  # the resender's first try: 1 s later
    a = AsyncCache[str, str](ttl=60, shared=tier, name="stale")
    assert await a.get_or_compute("k", value("v1")) == "value-v1"
    with stopped(server):
        a.invalidate("k")
        async with asyncio.timeout(5):
            await until_errors(a, 1)
    assert tier.key_of("stale", "k").removesuffix(":v") in tier._unsent
    # Redis answers again, and still holds v1 until the invalidation is resent.
    assert await a.get_or_compute("k", value("v2")) == "value-v2"


# ---------------------------------------------------------------------- item 11


class OddProxy:
    """A TCP proxy in front of the real server that swaps the replies matching `pattern`
    for a reply of the wrong type (as a broken server or proxy would), and holds back the
    commands matching `hold_pattern` until `hold` is set; the rest passes."""

    def __init__(
        self,
        target_port: int,
        pattern: bytes = b"(?!)",
        reply: bytes = b"",
        hold_pattern: bytes = b"(?!)",
        hold: asyncio.Event | None = None,
    ) -> None:
        self.target_port = target_port
        self.pattern = re.compile(pattern)
        self.reply = reply
        self.hold_pattern = re.compile(hold_pattern, re.DOTALL)
        self.hold = hold
        self.rewritten = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]

        async def upstream() -> None:
            while data := await reader.read(65536):
                if self.hold is not None and self.hold_pattern.search(data):
                    await self.hold.wait()
                up_writer.write(data)

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                if self.pattern.fullmatch(data):
                    self.rewritten += 1
                    data = self.reply
                writer.write(data)

        for pump in (upstream(), downstream()):
            task = asyncio.create_task(pump)
            self._tasks.add(task)

    async def close(self) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("pattern", "reply"),
    [  # (a null is "_" in RESP3, "$-1" in RESP2, redis-py 5's default; TIME is an array
        # of two numbers as strings in both)
        pytest.param(rb"(?:_|\$-1)\r\n", b":42\r\n", id="acquire-answers-an-integer"),
        pytest.param(
            rb"\*2\r\n\$10\r\n\d{10}\r\n\$\d\r\n\d+\r\n", b"$3\r\nodd\r\n", id="time-a-string"
        ),
    ],
)
async def test_a_server_answering_unexpected_types_never_reaches_a_degrade_caller(
    server: RedisServer, pattern: bytes, reply: bytes
) -> None:
    proxy = OddProxy(server.port, pattern, reply)
    url = await proxy.start()
    tier = RedisTier.from_url(url, namespace="f", secret=SECRET, op_timeout=1.0)
    cache = AsyncCache[int, str](ttl=60, shared=tier, name="odd")
    try:
        async with asyncio.timeout(10):
            for key in range(5):
                assert await cache.get_or_compute(key, value(key)) == f"value-{key}"
        assert proxy.rewritten >= 1
        assert cache.stats().shared_errors >= 1
    finally:
        await tier.aclose()
        await proxy.close()


# ---------------------------------------------------------------------- item 16


@pytest.mark.timeout(30)
async def test_what_is_read_before_the_subscription_listens_is_dropped_once_it_does(
    server: RedisServer, make_tier: Callable[..., RedisTier]
) -> None:
    # The subscription is slow to start (its SUBSCRIBE held back): the first load reads
    # Redis anyway (after op_timeout), and the invalidation published meanwhile is
    # never heard. Once it listens, the L1 must start afresh.
    subscribed = asyncio.Event()
    proxy = OddProxy(server.port, hold_pattern=rb"SUBSCRIBE", hold=subscribed)
    url = await proxy.start()
    tier = RedisTier.from_url(url, namespace="f", secret=SECRET, op_timeout=0.2)
    a = AsyncCache[str, str](ttl=60, shared=tier, name="early")
    b = AsyncCache[str, str](ttl=60, shared=make_tier(), name="early")
    try:
        assert await b.get_or_compute("k", value("v1")) == "value-v1"
        assert await a.get_or_compute("k", value("a")) == "value-v1"  # read, not listening
        b.invalidate("k")
        await b._shared.tier.settle()  # type: ignore[union-attr]
        assert "k" in a  # missed: not subscribed yet
        subscribed.set()
        async with asyncio.timeout(5):
            while "k" in a:  # noqa: ASYNC110 - the tier's L1, dropped by its listener
                await asyncio.sleep(0.01)
    finally:
        await tier.aclose()
        await proxy.close()


# ------------------------------------------------- a burst on a cold pool (#16's full run)


def _held_openings(
    never: int = 0,
) -> tuple[type[Connection], asyncio.Semaphore, list[int]]:
    """A connection class whose openings each wait for one release of the semaphore
    (as opening does in a burst on a cold pool, where it outlasts op_timeout), and the
    count of openings [started, finished]. The `never`-th opening is never answered."""
    gate = asyncio.Semaphore(1_000_000)
    counts = [0, 0]

    class HeldOpening(Connection):
        async def _connect(self) -> None:
            counts[0] += 1
            if counts[0] == never:
                await asyncio.Event().wait()
            await gate.acquire()
            await super()._connect()
            counts[1] += 1

    return HeldOpening, gate, counts


def _held_client(server: RedisServer, connection_class: type[Connection], size: int) -> Redis:
    return Redis.from_url(  # as RedisTier.from_url builds it (its hits skip execute_command)
        server.url,
        retry=Retry(NoBackoff(), 0),
        socket_timeout=None,
        connection_class=connection_class,
        max_connections=size,
    )


async def _close_the_gate(gate: asyncio.Semaphore) -> None:
    while not gate.locked():
        await gate.acquire()


@pytest.mark.timeout(20)
async def test_a_connection_opened_past_its_commands_deadline_joins_the_pool_for_the_next(
    server: RedisServer,
) -> None:
    # redis-py abandons a connection whose opening is cancelled: the command that timed
    # out took its half-open connection with it, the next command started over, and in
    # a burst on a cold pool no connection ever opened (every command timed out, three
    # opened the circuit). The opening now goes on; it keeps the command's slot (the
    # pool counts it in use) until it is back in the pool.
    connection_class, gate, openings = _held_openings()
    client = _held_client(server, connection_class, 1)
    tier = RedisTier(client, namespace="f", secret=SECRET, op_timeout=0.1)
    cache = AsyncCache[Any, str](ttl=60, shared=tier, name="held")
    try:
        await warm(cache)
        await client.connection_pool.disconnect()  # its one connection must open again
        await _close_the_gate(gate)
        started = openings[0]
        assert await cache.get_or_compute(1, value(1)) == "value-1"  # in-process
        assert_stats(cache, shared_errors=1)
        second = asyncio.create_task(cache.get_or_compute(2, value(2)))
        await settle()
        assert not second.done()  # waits for the slot: no "Too many connections"
        gate.release()
        async with asyncio.timeout(5):
            assert await second == "value-2"
        assert_stats(cache, shared_errors=1, shared_misses=2)  # the second shared
        assert openings[0] - started == 1  # both used the one opening the first began
        assert openings[1] - started == 1
    finally:
        gate.release()
        await tier.aclose()
        await client.aclose()


@pytest.mark.timeout(20)
async def test_commands_that_time_out_while_redis_answers_others_leave_the_circuit_closed(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Three commands wait past op_timeout for connections being opened while another
    # connection answers command after command: Redis is alive, the wait is this
    # process's. Each gets op_timeout more while Redis answers (three times at most),
    # then its caller loads in-process; the circuit stays closed, nothing is logged,
    # and the other callers share through Redis throughout.
    caplog.set_level(logging.WARNING, logger="cachekit.redis")
    connection_class, gate, openings = _held_openings()
    client = _held_client(server, connection_class, 4)
    tier = RedisTier(client, namespace="f", secret=SECRET, op_timeout=0.1)
    cache = AsyncCache[Any, str](ttl=60, shared=tier, name="busy")
    try:
        await warm(cache)
        await client.connection_pool.disconnect()
        await _close_the_gate(gate)
        held = [asyncio.create_task(cache.get_or_compute(k, value(k))) for k in range(4)]
        await settle()
        assert openings[0] - openings[1] == 4  # each waits for its connection to open
        gate.release()  # one opens (its command shares), and serves the callers below
        loop = asyncio.get_running_loop()
        begun = loop.time()
        chatter = 0
        async with asyncio.timeout(10):
            while not all(task.done() for task in held):
                chatter += 1
                assert await cache.get_or_compute(f"c{chatter}", value(chatter))
        assert loop.time() - begun >= 0.3  # extended while Redis answered
        assert [task.result() for task in held] == [f"value-{k}" for k in range(4)]
        assert_stats(cache, shared_errors=3, shared_misses=2 + chatter)
        assert not [r for r in caplog.records if "Redis failed" in r.getMessage()]
        assert await cache.get_or_compute("after", value("after")) == "value-after"
        assert_stats(cache, shared_errors=3, shared_misses=3 + chatter)  # not skipped
    finally:
        for _ in range(4):
            gate.release()
        await tier.aclose()
        await client.aclose()


@pytest.mark.timeout(20)
async def test_commands_that_time_out_queued_for_a_slot_do_not_count_against_redis(
    server: RedisServer, make_tier: Callable[..., RedisTier]
) -> None:
    # Five lookups on a pool of one while Redis is stopped: one is sent and times out,
    # the four behind it never asked Redis anything. Counted as failures, they opened
    # the circuit in a process merely busy with more commands than connections (a fleet
    # on a loaded machine: 33 outages in one run); now only the one sent counts.
    tier = make_tier(max_connections=1, op_timeout=0.2, cooldown=30.0)
    cache = AsyncCache[int, str](ttl=60, shared=tier, name="queued")
    await warm(cache)
    with stopped(server):
        async with asyncio.timeout(5):
            got = await asyncio.gather(*(cache.get_or_compute(k, value(k)) for k in range(5)))
    assert got == [f"value-{k}" for k in range(5)]  # each loaded in-process
    assert_stats(cache, shared_errors=5, shared_misses=1)
    # One failure in a row, under the three that open the circuit: the next caller shares.
    assert await cache.get_or_compute("after", value("after")) == "value-after"
    assert_stats(cache, shared_errors=5, shared_misses=2)


@pytest.mark.timeout(20)
async def test_commands_queued_for_a_slot_go_without_redis_as_soon_as_the_circuit_opens(
    make_tier: Callable[..., RedisTier],
) -> None:
    # Lookups queued behind a stalled command used to learn that the circuit had opened only
    # once each was handed a slot, one loop iteration after another: seconds each on a
    # loop that runs late (measured: callers arriving through a SIGSTOP of Redis on a loop
    # blocked 0.3 s an iteration waited 5.2 s at the median; now 2.9 s). The stalled
    # holder is played by taking the one slot; the circuit is tripped as its timeouts do.
    tier = make_tier(max_connections=1, op_timeout=5.0, cooldown=30.0)
    cache = AsyncCache[int, str](ttl=60, shared=tier, name="turned")
    await warm(cache)
    slots = tier._free
    assert slots is not None and slots.try_take()
    try:
        lookups = [asyncio.create_task(cache.get_or_compute(k, value(k))) for k in range(3)]
        await settle()
        assert not any(lookup.done() for lookup in lookups)  # queued for the slot
        loop = asyncio.get_running_loop()
        for _ in range(3):  # the circuit opens on the third failure in a row
            tier._failed(TimeoutError("stalled"), loop)
        await settle()
        assert all(lookup.done() for lookup in lookups)  # at once, not after op_timeout
        assert [lookup.result() for lookup in lookups] == [f"value-{k}" for k in range(3)]
        assert_stats(cache, shared_misses=1)  # (the warm-up's): they never asked Redis
    finally:
        slots.give_back()


@pytest.mark.timeout(20)
async def test_an_opening_never_answered_gives_its_slot_up_after_the_connect_timeout(
    server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The opening that outlives its command keeps the command's slot: one whose
    # handshake is never answered (a client with no socket timeout, a peer gone silent)
    # must not keep it for good, or a pool of one would never serve Redis again.
    monkeypatch.setattr(_redis_lanes, "_CONNECT_TIMEOUT", 0.5)
    connection_class, _, openings = _held_openings(never=3)
    client = _held_client(server, connection_class, 1)
    tier = RedisTier(client, namespace="f", secret=SECRET, op_timeout=0.1, cooldown=0.2)
    cache = AsyncCache[Any, str](ttl=60, shared=tier, name="silent")
    try:
        await warm(cache)  # two openings: the subscription's and the commands' one
        await client.connection_pool.disconnect()
        assert await cache.get_or_compute(0, value(0)) == "value-0"  # in-process
        assert openings[0] == 3  # the third, never answered, keeps the one slot
        shared = cache.stats().shared_misses
        key = 0
        async with asyncio.timeout(10):  # without the bound: never shared again
            while cache.stats().shared_misses == shared:
                key += 1
                assert await cache.get_or_compute(key, value(key)) == f"value-{key}"
        assert openings[0] == 4  # a new connection, once the silent opening gave up
    finally:
        await tier.aclose()
        await client.aclose()
