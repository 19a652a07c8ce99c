"""Faults: a store that raises, a key that mutates, a loop that dies, a computation that
awaits itself. Every caller must be answered; none may wait forever.

Each test runs under a hard timeout (the `timeout` mark, plus `asyncio.timeout` where a
loop waits), so that a regression fails instead of stalling the suite.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import traceback
from collections.abc import Hashable
from typing import Any

import cachetools
import pytest
from freezegun import freeze_time

from cachekit import AsyncCache, CacheEvent, LoadLimiter, TinyLFUCache, async_cached

from .conftest import Gate, assert_stats

pytestmark = pytest.mark.timeout(30)

# ------------------------------------------------------------------ a store that raises


class RaisingStore(cachetools.LRUCache[Hashable, Any]):
    """An LRU store whose writes fail with `error` while it is set."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.error: Exception | None = None

    def __setitem__(self, key: Hashable, value: Any) -> None:
        if self.error is not None:
            raise self.error
        super().__setitem__(key, value)


async def test_a_store_that_raises_answers_every_waiter_with_its_error() -> None:
    store = RaisingStore(10)
    limiter = LoadLimiter(1)
    cache: AsyncCache[str, str] = AsyncCache(store=store, max_loads=limiter)
    store.error = RuntimeError("disk full")
    gate = Gate("v")
    async with asyncio.timeout(5):
        callers = [asyncio.create_task(cache.get_or_compute("k", gate)) for _ in range(3)]
        await gate.started.wait()
        gate.release.set()
        results = await asyncio.gather(*callers, return_exceptions=True)
    assert [repr(r) for r in results] == [repr(RuntimeError("disk full"))] * 3
    assert cache.loading() == {}
    assert_stats(cache, loads_running=0, loads_queued=0, misses=1, coalesced=2)
    assert limiter.running == 0
    store.error = None  # and every key works again, the failed one included

    async def ok() -> str:
        return "ok"

    async with asyncio.timeout(5):
        assert await cache.get_or_compute("k", ok) == "ok"
        assert await cache.get_or_compute("other", ok) == "ok"
    assert "k" in cache and "other" in cache


async def test_max_loads_store_errors_never_exhaust_the_slots() -> None:
    # The README's own example: getsizeof=len fails on a value without a length.
    cache: AsyncCache[int, Any] = AsyncCache(
        store=TinyLFUCache(64 * 2**20, getsizeof=len), max_loads=2
    )

    async def none() -> None:
        return None

    async with asyncio.timeout(5):
        for key in range(5):  # more errors than slots
            with pytest.raises(TypeError):
                await cache.get_or_compute(key, none)

        async def sized() -> str:
            return "abc"

        assert await cache.get_or_compute(99, sized) == "abc"
    assert_stats(cache, loads_running=0, loads_queued=0)


async def test_a_value_too_large_for_the_store_is_returned_and_not_stored() -> None:
    cache: AsyncCache[str, str] = AsyncCache(store=cachetools.LRUCache(10, getsizeof=len))
    gate = Gate("x" * 100)
    async with asyncio.timeout(5):
        callers = [asyncio.create_task(cache.get_or_compute("k", gate)) for _ in range(2)]
        await gate.started.wait()
        gate.release.set()
        assert await asyncio.gather(*callers) == ["x" * 100] * 2
    assert "k" not in cache
    assert cache.loading() == {}
    assert_stats(cache, loads_running=0, load_failures=0)


# ------------------------------------------------------------------ a key that mutates


class MutableKey:
    """A key whose hash follows a field that its owner changes after caching it."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        return hash(self.n)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MutableKey) and other.n == self.n

    def __repr__(self) -> str:
        return f"MutableKey({self.n})"


@pytest.mark.parametrize("policy", ["lru", "lfu", "fifo", "rr", "tinylfu"])
async def test_a_key_whose_hash_changed_costs_that_key_only(
    policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache: AsyncCache[Any, str] = AsyncCache(maxsize=3, policy=policy)
    broken = MutableKey(1)

    async def value_of(k: Any) -> str:
        return f"v{k!r}"

    async with asyncio.timeout(5):
        await cache.get_or_compute(broken, lambda: value_of(broken))
        await cache.get_or_compute(0, lambda: value_of(0))
        # Its slot in the store now sits under the wrong hash. (A dict finds a key by
        # identity where its probe passes the key's slot, so pick a hash whose does not.)
        for n in range(1000, 2000):
            broken.n = n
            if broken not in cache._entries:
                break
        else:
            pytest.fail("no hash makes the key unfindable")
        for k in range(20):  # every one of these must evict
            assert await cache.get_or_compute(k, lambda k=k: value_of(k)) == f"v{k!r}"
        assert await cache.get_or_compute(19, lambda: value_of(-1)) == "v19"  # a hit
    assert len(cache) <= 3
    assert broken not in list(cache._store)  # lost, as allowed
    assert cache.loading() == {}
    # lru evicts it without a lookup (OrderedDict.popitem); the others trip over it, drop
    # it and say so; which key rr evicts is up to chance.
    if policy not in ("lru", "rr"):
        assert "changed after it was stored" in caplog.text


# ------------------------------------------------------------------ a loop that dies


def test_an_orphaned_flight_gives_back_its_load_slot() -> None:
    limiter = LoadLimiter(1)
    cache: AsyncCache[str, str] = AsyncCache(max_loads=limiter)
    old_loop = asyncio.new_event_loop()
    never = Gate()

    async def start_and_leave() -> asyncio.Task[str]:
        task = asyncio.create_task(cache.get_or_compute("a", never))
        await never.started.wait()
        return task

    old_loop.run_until_complete(start_and_leave())  # old_loop stops, holding the one slot
    assert limiter.running == 1

    async def quick() -> str:
        return "quick"

    async def main() -> list[str]:
        async with asyncio.timeout(5):  # without the fix, "a" queues behind its own orphan
            return [await cache.get_or_compute("a", quick), await cache.get_or_compute("b", quick)]

    assert asyncio.run(main()) == ["quick", "quick"]
    assert limiter.running == 0
    assert_stats(cache, loads_running=0, loads_queued=0)
    # The old loop runs again and shuts down: its late outcome changes nothing.
    pending = asyncio.all_tasks(old_loop)
    for task in pending:
        task.cancel()
    old_loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    old_loop.close()
    assert limiter.running == 0
    assert_stats(cache, loads_running=0, loads_queued=0)
    assert cache.get("a") == "quick"


def test_a_waiter_on_another_loop_starts_over_when_the_flights_loop_is_closed(
    capfd: pytest.CaptureFixture[str],
) -> None:
    cache: AsyncCache[str, str] = AsyncCache()
    home = asyncio.new_event_loop()
    unexpected: list[dict[str, Any]] = []

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # Closing a loop under a running task is this test's fault on purpose; anything
        # else the loop reports is not.
        if "destroyed but it is pending" not in context.get("message", ""):
            unexpected.append(context)

    home.set_exception_handler(handler)
    started = threading.Event()

    async def hang() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    home_thread = threading.Thread(target=home.run_forever)
    home_thread.start()
    asyncio.run_coroutine_threadsafe(cache.get_or_compute("k", hang), home)
    assert started.wait(5)

    async def own() -> str:
        return "own"

    result: list[Any] = []

    async def join() -> str:
        async with asyncio.timeout(5):
            return await cache.get_or_compute("k", own)

    def second_thread() -> None:
        try:
            result.append(asyncio.run(join()))
        except BaseException as exc:
            result.append(exc)

    joiner = threading.Thread(target=second_thread)
    joiner.start()
    deadline = time.monotonic() + 5
    while cache.stats().coalesced < 1:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    home.call_soon_threadsafe(home.stop)
    home_thread.join(5)
    home.close()  # no shutdown: the flight's task is left pending on a closed loop
    joiner.join(10)
    assert result == ["own"]
    assert cache.get("k") == "own"
    gc.collect()  # the dead task is closed: it must land quietly, and change nothing
    assert cache.get("k") == "own"
    assert unexpected == []
    assert "Exception ignored" not in capfd.readouterr().err


# ------------------------------------------------------------------ a computation that misbehaves


async def test_a_computation_awaiting_its_own_key_raises_instead_of_hanging() -> None:
    cache: AsyncCache[str, str] = AsyncCache(negative_ttl=None)

    async def selfish() -> str:
        return await cache.get_or_compute("a", selfish)

    async with asyncio.timeout(5):
        with pytest.raises(RuntimeError, match=r"^deadlock: .*key 'a' .*\('a' -> 'a'\)"):
            await cache.get_or_compute("a", selfish)

        async def sound() -> str:
            return "fine"

        assert await cache.get_or_compute("a", sound) == "fine"
    assert cache.loading() == {}


async def test_a_cycle_between_two_decorated_functions_raises_naming_it() -> None:
    @async_cached
    async def ping(n: int) -> int:
        return await pong(n)

    @async_cached
    async def pong(n: int) -> int:
        return await ping(n)

    async with asyncio.timeout(5):
        with pytest.raises(RuntimeError, match=r"^deadlock: .*key 1 .*\(1 -> 1 -> 1\)"):
            await ping(1)
    assert ping.cache.loading() == {} and pong.cache.loading() == {}


async def test_a_cycle_whose_halves_started_apart_is_caught_too() -> None:
    # "a" and "b" are led by two independent callers; then each computation asks for the
    # other. The second to ask must fail, not wait.
    cache: AsyncCache[str, str] = AsyncCache()
    both = asyncio.Event()
    count = 0

    async def needs(other: str) -> str:
        nonlocal count
        count += 1
        if count == 2:
            both.set()
        await both.wait()
        return await cache.get_or_compute(other, lambda: needs("?"))

    async with asyncio.timeout(5):
        results = await asyncio.gather(
            cache.get_or_compute("a", lambda: needs("b")),
            cache.get_or_compute("b", lambda: needs("a")),
            return_exceptions=True,
        )
    errors = [r for r in results if isinstance(r, RuntimeError)]
    assert errors and all("deadlock" in str(e) for e in errors)
    assert cache.loading() == {}


async def test_a_bulk_loader_asking_for_a_key_of_its_own_batch_raises() -> None:
    cache: AsyncCache[str, str] = AsyncCache()

    async def load(keys: list[str]) -> dict[str, str]:
        await cache.get_or_compute(keys[1], lambda: load([keys[1]]))  # type: ignore[arg-type,return-value]
        return {}

    async def load_many(keys: list[str]) -> dict[str, str]:
        await cache.get_many(keys, load_many)
        return {}

    async with asyncio.timeout(5):
        with pytest.raises(RuntimeError, match=r"deadlock: .*'y'"):
            await cache.get_many(["x", "y"], load)
        with pytest.raises(RuntimeError, match="deadlock"):
            await cache.get_many(["p", "q"], load_many)

        async def sound(keys: list[str]) -> dict[str, str]:
            return {k: k.upper() for k in keys}

        assert await cache.get_many(["x", "y"], sound) == {"x": "X", "y": "Y"}
    assert cache.loading() == {}


async def test_a_computation_raising_generator_exit_is_a_runtime_error_for_its_callers() -> None:
    cache: AsyncCache[str, str] = AsyncCache(negative_ttl=60)
    gate = Gate(error=GeneratorExit())
    async with asyncio.timeout(5):
        callers = [asyncio.create_task(cache.get_or_compute("k", gate)) for _ in range(2)]
        await gate.started.wait()
        gate.release.set()
        results = await asyncio.gather(*callers, return_exceptions=True)
    for result in results:
        assert type(result) is RuntimeError
        assert isinstance(result.__cause__, GeneratorExit)
    assert "k" not in cache  # never cached, whatever negative_ttl says

    async def at_once() -> str:
        raise GeneratorExit

    with pytest.raises(RuntimeError, match="raised GeneratorExit"):
        await cache.get_or_compute("j", at_once)
    assert_stats(cache, loads_running=0)


def test_generator_exit_in_a_computation_does_not_kill_asyncio_run() -> None:
    cache: AsyncCache[str, str] = AsyncCache()

    async def bad() -> str:
        await asyncio.sleep(0)
        raise GeneratorExit

    async def main() -> str:
        try:
            await cache.get_or_compute("k", bad)
        except Exception as exc:
            return type(exc).__name__
        return "no error"

    assert asyncio.run(main()) == "RuntimeError"


@pytest.mark.parametrize("decorated", [False, True])
async def test_callers_of_a_cached_failure_never_see_each_others_notes(decorated: bool) -> None:
    cache: AsyncCache[str, str] = AsyncCache(negative_ttl=60)

    async def fail() -> str:
        error = ValueError("boom")
        error.add_note("from the computation")
        raise error

    @async_cached(negative_ttl=60)
    async def failing(k: str) -> str:
        return await fail()

    depth = 0
    for i in range(1_000):
        with pytest.raises(ValueError) as info:
            if decorated:
                await failing("k")
            else:
                await cache.get_or_compute("k", fail)
        assert info.value.__notes__ == ["from the computation"]
        info.value.add_note(f"caller {i}")
        frames = len(traceback.extract_tb(info.value.__traceback__))
        if i == 1:  # the first call got the flight's own exception; hits get copies
            depth = frames
        assert i < 2 or frames == depth  # re-raising never piles up frames either


async def test_a_cached_failure_that_cannot_be_copied_has_its_notes_reset() -> None:
    class Picky(Exception):
        def __init__(self, code: int, reason: str) -> None:
            super().__init__(f"{code}: {reason}")

    cache: AsyncCache[str, str] = AsyncCache(negative_ttl=60)

    async def fail() -> str:
        raise Picky(500, "down")

    for _ in range(3):
        with pytest.raises(Picky) as info:
            await cache.get_or_compute("k", fail)
        assert getattr(info.value, "__notes__", []) == []
        info.value.add_note("mine")


# ------------------------------------------------------------------ misuse of options


@pytest.mark.parametrize("build", [AsyncCache, async_cached])
def test_cancel_abandoned_must_be_a_bool(build: Any) -> None:
    with pytest.raises(TypeError, match=r"^cancel_abandoned must be True or False, got 'no'$"):
        build(cancel_abandoned="no")


@pytest.mark.parametrize("option", ["ttl", "negative_ttl", "stale_if_error", "load_timeout"])
def test_a_duration_past_the_largest_float_is_a_value_error_naming_it(option: str) -> None:
    with pytest.raises(ValueError, match=rf"^{option} is too large a number of seconds"):
        AsyncCache(**{option: 10**400, "ttl": 1.0} if option != "ttl" else {option: 10**400})


# ------------------------------------------------------------------ the clock contract
# Decorated here, at import, outside any patch: the clock must still follow freezegun.


@async_cached(ttl=60)
async def _fixed(x: int) -> float:
    return time.time()


@async_cached(ttl=60)
async def _star_args(*args: int) -> float:
    return time.time()


@async_cached(ttl=60)
async def _star_kwargs(**kwargs: int) -> float:
    return time.time()


@async_cached(ttl=60, key=lambda x: x)
async def _custom_key(x: int) -> float:
    return time.time()


class _Owner:
    @async_cached(ttl=60)
    async def method(self, x: int) -> float:
        return time.time()


_OWNER = _Owner()


@pytest.mark.parametrize(
    "call",
    [
        lambda: _fixed(1),
        lambda: _star_args(1),
        lambda: _star_kwargs(x=1),
        lambda: _custom_key(1),
        lambda: _OWNER.method(1),
    ],
    ids=["fixed", "star_args", "star_kwargs", "key", "method"],
)
async def test_every_wrapper_shape_follows_freezegun_when_decorated_before_it(call: Any) -> None:
    with freeze_time("2026-01-01", real_asyncio=True) as frozen:
        first = await call()
        frozen.tick(59)
        assert await call() == first
        frozen.tick(2)
        assert await call() != first  # past ttl=60: computed again


# ------------------------------------------------------------------ clear() counts no evictions


@pytest.mark.parametrize("policy", ["lru", "lfu", "fifo", "rr", "tinylfu"])
async def test_clear_counts_no_eviction_on_every_cachetools_version(policy: str) -> None:
    events: list[CacheEvent] = []
    cache: AsyncCache[int, int] = AsyncCache(maxsize=100, policy=policy, on_event=events.append)

    async def square(k: int) -> int:
        return k * k

    for k in range(50):
        await cache.get_or_compute(k, lambda k=k: square(k))
    entries = cache._entries
    cache.clear()
    assert len(cache) == 0 and cache._entries is entries  # the hit path's view stays bound
    assert_stats(cache, evictions=0)
    assert [e for e in events if e.kind == "eviction"] == []
    for k in range(150):  # and the store works on afterwards, evicting as it should
        assert await cache.get_or_compute(k, lambda k=k: square(k)) == k * k
    assert len(cache) == 100
    assert_stats(cache, evictions=50)


async def test_clear_of_a_store_with_its_own_constructor_counts_no_eviction() -> None:
    store = cachetools.TTLCache(maxsize=100, ttl=1e6)  # its __init__ needs a ttl
    cache: AsyncCache[int, int] = AsyncCache(store=store)

    async def square(k: int) -> int:
        return k * k

    for k in range(20):
        await cache.get_or_compute(k, lambda k=k: square(k))
    cache.clear()
    assert len(cache) == 0 and len(store) == 0
    assert_stats(cache, evictions=0)
    for k in range(120):
        await cache.get_or_compute(k, lambda k=k: square(k))
    assert_stats(cache, evictions=20)


async def test_a_flights_task_cancelled_at_once_sends_its_callers_to_start_over() -> None:
    # On Python 3.11 the task has not run its first step yet (on 3.12+ it has, eagerly):
    # either way its callers start over, and nothing stays counted as running.
    cache: AsyncCache[str, str] = AsyncCache()
    calls = 0

    async def slow() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return f"v{calls}"

    async with asyncio.timeout(5):
        callers = [asyncio.ensure_future(cache.get_or_compute("k", slow)) for _ in range(2)]
        await asyncio.sleep(0)  # both have joined; the task exists
        task = cache._flights["k"].task
        assert task is not None
        task.cancel()
        results = await asyncio.gather(*callers)
    assert results[0] == results[1] and results[0].startswith("v")
    assert cache.loading() == {}
    assert_stats(cache, loads_running=0)
