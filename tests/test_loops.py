"""One cache, many event loops and threads: entries are shared, flights never hang."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from cachekit import AsyncCache, async_cached

from .conftest import assert_stats


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Block this (non-loop) thread until `condition()` holds; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def test_completed_entries_are_shared_across_asyncio_run_calls() -> None:
    calls = 0

    @async_cached(ttl=60)
    async def f(x: int) -> int:
        nonlocal calls
        calls += 1
        return x

    assert asyncio.run(f(1)) == 1
    assert asyncio.run(f(1)) == 1
    assert calls == 1


def test_a_key_in_flight_on_one_loop_is_joined_from_another_thread() -> None:
    cache: AsyncCache[str, str] = AsyncCache()
    release = threading.Event()
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        await asyncio.get_running_loop().run_in_executor(None, release.wait)
        return "shared"

    results: dict[str, Any] = {}

    def run(name: str) -> None:
        results[name] = asyncio.run(cache.get_or_compute("k", compute))

    first = threading.Thread(target=run, args=("first",))
    first.start()
    wait_until(lambda: cache.stats().misses == 1)
    second = threading.Thread(target=run, args=("second",))
    second.start()
    wait_until(lambda: cache.stats().coalesced == 1)
    release.set()
    first.join(10)
    second.join(10)
    assert results == {"first": "shared", "second": "shared"}
    assert calls == 1


def test_a_caller_from_another_thread_joins_a_computation_still_in_its_first_step() -> None:
    """On 3.12 a leader starts its computation eagerly and takes no future of its own if the
    computation lands in that first step; a caller of another thread may join it meanwhile.
    Both get the one value, and the leader does not compute again."""
    cache: AsyncCache[str, str] = AsyncCache()
    in_first_step = threading.Event()
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        in_first_step.set()
        # Blocks its loop, without suspending, until the other thread's caller has joined.
        wait_until(lambda: cache.stats().coalesced == 1)
        return "shared"

    results: dict[str, Any] = {}

    def run(name: str) -> None:
        results[name] = asyncio.run(cache.get_or_compute("k", compute))

    first = threading.Thread(target=run, args=("first",))
    first.start()
    assert in_first_step.wait(10)
    second = threading.Thread(target=run, args=("second",))
    second.start()
    first.join(10)
    second.join(10)
    assert results == {"first": "shared", "second": "shared"}
    assert calls == 1
    assert_stats(cache, misses=1, coalesced=1, hits=0)  # the leader did not ask again


def test_a_flight_on_a_stopped_loop_is_replaced_not_joined() -> None:
    cache: AsyncCache[str, str] = AsyncCache()
    old_loop = asyncio.new_event_loop()

    async def never() -> str:
        await asyncio.Event().wait()
        return "never"

    async def start_and_leave() -> asyncio.Task[str]:
        task = asyncio.create_task(cache.get_or_compute("k", never))
        await asyncio.sleep(0)
        return task

    abandoned = old_loop.run_until_complete(start_and_leave())  # old_loop now stops

    async def fresh() -> str:
        return "fresh"

    assert asyncio.run(cache.get_or_compute("k", fresh)) == "fresh"
    assert cache.get("k") == "fresh"
    # Shut the old loop down as asyncio.run would: its flight is cancelled late, and that
    # must not touch the new entry.
    pending = asyncio.all_tasks(old_loop)
    assert abandoned in pending and len(pending) == 2  # the caller and the flight's task
    for task in pending:
        task.cancel()
    old_loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    old_loop.close()
    assert cache.get("k") == "fresh"


def test_waiter_on_another_loop_starts_over_when_the_flights_loop_shuts_down() -> None:
    cache: AsyncCache[str, str] = AsyncCache()
    started = threading.Event()
    stop_first = threading.Event()

    async def hang() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    async def first_main() -> None:
        caller = asyncio.create_task(cache.get_or_compute("k", hang))
        await asyncio.get_running_loop().run_in_executor(None, stop_first.wait)
        # Returning makes asyncio.run cancel the caller and the flight's task, then close.
        assert not caller.done()

    first = threading.Thread(target=asyncio.run, args=(first_main(),))
    first.start()
    started.wait(10)

    async def own() -> str:
        return "own"

    result: list[str] = []
    second = threading.Thread(
        target=lambda: result.append(asyncio.run(cache.get_or_compute("k", own)))
    )
    second.start()
    wait_until(lambda: cache.stats().coalesced == 1)
    stop_first.set()
    first.join(10)
    second.join(10)
    assert result == ["own"]
    assert cache.get("k") == "own"


def test_many_threads_each_with_its_own_loop_share_one_cache() -> None:
    threads_n, keys_n = 8, 50
    cache: AsyncCache[int, int] = AsyncCache(maxsize=None)
    all_requested = threading.Event()
    computed: list[int] = []
    lock = threading.Lock()

    async def compute(k: int) -> int:
        with lock:
            computed.append(k)
        await asyncio.get_running_loop().run_in_executor(None, all_requested.wait)
        return k * k

    results: list[list[int]] = []

    async def worker() -> list[int]:
        return await asyncio.gather(
            *(cache.get_or_compute(k, lambda k=k: compute(k)) for k in range(keys_n))
        )

    def run() -> None:
        values = asyncio.run(worker())
        with lock:
            results.append(values)

    threads = [threading.Thread(target=run) for _ in range(threads_n)]
    for t in threads:
        t.start()
    wait_until(lambda: cache.stats().misses + cache.stats().coalesced == threads_n * keys_n)
    all_requested.set()
    for t in threads:
        t.join(10)
    assert results == [[k * k for k in range(keys_n)]] * threads_n
    assert sorted(computed) == list(range(keys_n))
    assert_stats(cache, misses=keys_n, coalesced=(threads_n - 1) * keys_n)
    # And afterwards every thread hits.
    assert asyncio.run(worker()) == [k * k for k in range(keys_n)]
    assert_stats(cache, hits=keys_n)


def test_threads_hammering_a_small_cache_keep_its_invariants() -> None:
    # Whatever the interleaving, the store and the hit-path view must hold the same
    # entries, every caller must get its key's value, and nothing may be left in flight.
    cache: AsyncCache[int, int] = AsyncCache(maxsize=8, ttl=60)
    errors: list[BaseException] = []

    async def compute(k: int) -> int:
        await asyncio.sleep(0)
        return k * 3

    async def worker(seed: int) -> None:
        for i in range(2_000):
            k = (i * 7 + seed) % 20
            assert await cache.get_or_compute(k, lambda k=k: compute(k)) == k * 3
            if i % 97 == 0:
                cache.invalidate(k)

    def run(seed: int) -> None:
        try:
            asyncio.run(worker(seed))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(cache._entries) == len(cache._store) <= 8
    assert set(cache._entries) == set(cache._store)
    assert cache._flights == {}
    stats = cache.stats()
    assert stats.hits + stats.misses + stats.coalesced == 4 * 2_000


def test_a_stale_key_is_refreshed_once_for_callers_on_two_loops() -> None:
    from .conftest import FakeClock

    clock = FakeClock()
    cache: AsyncCache[str, str] = AsyncCache(ttl=10, stale_ttl=30, timer=clock)
    release = threading.Event()
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        if calls > 1:  # the refresh waits, off the loop, until the test lets it land
            await asyncio.get_running_loop().run_in_executor(None, release.wait)
        return f"v{calls}"

    assert asyncio.run(cache.get_or_compute("k", compute)) == "v1"
    clock.tick(15)
    refresher = threading.Thread(target=lambda: asyncio.run(_serve_then_finish(cache, compute)))
    refresher.start()  # gets v1 at once, and its loop runs the one refresh
    wait_until(lambda: cache.loading() == {"k": "running"})
    assert asyncio.run(cache.get_or_compute("k", compute)) == "v1"  # another loop: stale too
    assert calls == 2  # no second refresh
    release.set()
    refresher.join()
    assert asyncio.run(cache.get_or_compute("k", compute)) == "v2"
    assert_stats(cache, refreshes=1, stale_hits=2, misses=1)


async def _serve_then_finish(cache: AsyncCache[str, str], compute: Callable[[], Any]) -> None:
    assert await cache.get_or_compute("k", compute) == "v1"
    # Keep this loop alive until the refresh it runs has landed.
    others = asyncio.all_tasks() - {asyncio.current_task()}
    await asyncio.gather(*others)
