"""Freshness: stale-while-revalidate, refresh-ahead, stale-if-error, ttl jitter."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from cachekit import AsyncCache, async_cached

from .conftest import FakeClock, Gate, assert_stats, settle


class Loader:
    """Returns v1, v2, ... and can be held on a gate or made to fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def __call__(self) -> str:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError(f"down at call {self.calls}")
        return f"v{self.calls}"


async def test_stale_key_serves_everyone_at_once_and_refreshes_once(clock: FakeClock) -> None:
    cache: AsyncCache[str, str] = AsyncCache(ttl=10, stale_ttl=30, timer=clock)
    load = Loader()
    assert await cache.get_or_compute("k", load) == "v1"
    clock.tick(15)  # stale: past ttl, within ttl + stale_ttl
    load.gate = asyncio.Event()
    callers = [asyncio.create_task(cache.get_or_compute("k", load)) for _ in range(1000)]
    await settle()
    assert all(c.done() for c in callers)  # nobody waited for the refresh
    assert {c.result() for c in callers} == {"v1"}
    assert load.calls == 2  # exactly one refresh
    assert_stats(cache, stale_hits=1000, refreshes=1, misses=1)
    load.gate.set()
    await settle()
    assert await cache.get_or_compute("k", load) == "v2"
    assert load.calls == 2


async def test_past_ttl_plus_stale_ttl_the_entry_is_expired(clock: FakeClock) -> None:
    cache: AsyncCache[str, str] = AsyncCache(ttl=10, stale_ttl=5, timer=clock)
    load = Loader()
    await cache.get_or_compute("k", load)
    clock.tick(15)
    assert await cache.get_or_compute("k", load) == "v2"  # a plain miss: waits for v2
    assert_stats(cache, stale_hits=0, refreshes=0, misses=2, expirations=1)


async def test_refresh_ahead_keeps_a_hot_key_from_expiring(clock: FakeClock) -> None:
    cache: AsyncCache[str, str] = AsyncCache(ttl=10, refresh_after=6, timer=clock)
    load = Loader()
    await cache.get_or_compute("k", load)
    clock.tick(5.9)
    assert await cache.get_or_compute("k", load) == "v1"
    assert load.calls == 1  # before refresh_after: a plain hit
    clock.tick(0.1)
    assert await cache.get_or_compute("k", load) == "v1"  # the current value, at once
    await settle()
    assert load.calls == 2
    assert_stats(cache, refreshes=1, stale_hits=0)
    clock.tick(5)  # past the first value's ttl; the refreshed one (landed at 6) is fresh
    assert await cache.get_or_compute("k", load) == "v2"
    await settle()
    assert load.calls == 2
    clock.tick(1)  # 6 s after the refresh landed: its own refresh point
    assert await cache.get_or_compute("k", load) == "v2"
    await settle()
    assert load.calls == 3
    assert_stats(cache, refreshes=2, stale_hits=0, misses=1)


async def test_failed_refresh_keeps_serving_the_old_value_then_expires(clock: FakeClock) -> None:
    cache: AsyncCache[str, str] = AsyncCache(ttl=10, stale_ttl=20, negative_ttl=3, timer=clock)
    load = Loader()
    await cache.get_or_compute("k", load)
    load.fail = True
    clock.tick(12)
    assert await cache.get_or_compute("k", load) == "v1"
    await settle()
    assert_stats(cache, refresh_failures=1, refreshes=1)
    clock.tick(2)  # the failure is negatively cached for 3 s: no refresh meanwhile
    assert await cache.get_or_compute("k", load) == "v1"
    await settle()
    assert_stats(cache, refresh_failures=1, refreshes=1)
    clock.tick(3)
    assert await cache.get_or_compute("k", load) == "v1"  # still served, a new refresh
    await settle()
    assert_stats(cache, refresh_failures=2, refreshes=2)
    clock.tick(13)  # 30 s after landing: nothing can be served any more
    with pytest.raises(ConnectionError):
        await cache.get_or_compute("k", load)


async def test_invalidate_cancels_a_background_refresh(clock: FakeClock) -> None:
    cache: AsyncCache[str, str] = AsyncCache(ttl=10, stale_ttl=30, timer=clock)
    load = Loader()
    await cache.get_or_compute("k", load)
    clock.tick(11)
    load.gate = asyncio.Event()
    assert await cache.get_or_compute("k", load) == "v1"
    await settle()
    assert cache.loading() == {"k": "running"}
    assert cache.invalidate("k") is True
    await settle()
    assert cache.loading() == {}
    assert_stats(cache, loads_running=0)
    load.gate.set()
    await settle()
    assert "k" not in cache  # the cancelled refresh stored nothing
    load.gate = None
    assert await cache.get_or_compute("k", load) == "v3"


async def test_callers_after_the_stale_window_join_the_refresh(clock: FakeClock) -> None:
    cache: AsyncCache[str, str] = AsyncCache(ttl=10, stale_ttl=5, timer=clock)
    load = Loader()
    await cache.get_or_compute("k", load)
    clock.tick(12)
    load.gate = asyncio.Event()
    assert await cache.get_or_compute("k", load) == "v1"  # starts the refresh
    clock.tick(5)  # the stale window closed while the refresh runs
    late = asyncio.create_task(cache.get_or_compute("k", load))
    await settle()
    assert not late.done()
    load.gate.set()
    assert await late == "v2"
    assert load.calls == 2


async def test_ttl_jitter_stays_in_bounds_and_spreads_expiries(clock: FakeClock) -> None:
    cache: AsyncCache[int, int] = AsyncCache(
        maxsize=None, ttl=100, ttl_jitter=0.2, random=random.Random(7), timer=clock
    )
    for k in range(200):
        cache.set(k, k)
    expiries = [cache._entries[k].expires_at - clock.now for k in range(200)]
    assert all(80 <= e <= 100 for e in expiries)
    assert max(expiries) - min(expiries) > 15  # spread, not bunched
    clock.tick(90)
    alive = sum(k in cache for k in range(200))
    assert 0 < alive < 200


async def test_load_time_is_counted_on_the_cache_clock(clock: FakeClock) -> None:
    cache: AsyncCache[str, str] = AsyncCache(timer=clock)
    gate = Gate("v")
    task = asyncio.create_task(cache.get_or_compute("k", gate))
    await gate.started.wait()
    clock.tick(2.5)
    gate.release.set()
    await task
    assert_stats(cache, load_count=1)
    assert cache.stats().load_time_total == 2.5


async def test_decorator_takes_the_freshness_options(clock: FakeClock) -> None:
    calls = 0

    @async_cached(ttl=10, stale_ttl=10, timer=clock)
    async def f(x: int) -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await f(1) == 1
    clock.tick(11)
    assert await f(1) == 1  # stale, through the generated hit path's slow branch
    await settle()
    assert await f(1) == 2
    assert_stats(f.cache, stale_hits=1, refreshes=1)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"ttl": 10, "refresh_after": 10}, ValueError, r"^refresh_after must be > 0 and < ttl"),
        ({"refresh_after": 1}, ValueError, r"^refresh_after must be > 0 and < ttl \(None\)"),
        ({"ttl": 10, "stale_ttl": -1}, ValueError, r"^stale_ttl must be >= 0 seconds"),
        (
            {"stale_ttl": 5},
            ValueError,
            r"^stale_ttl needs a ttl to count from, got ttl=None, stale_ttl=5$",
        ),
        ({"ttl_jitter": 1.0}, ValueError, r"^ttl_jitter must be in \[0, 1\), got 1.0$"),
        ({"ttl_jitter": "x"}, TypeError, r"^ttl_jitter must be a number in \[0, 1\)"),
    ],
)
def test_bad_freshness_options_fail_early(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        AsyncCache(**options)


async def test_ttl_can_be_computed_from_each_value(clock: FakeClock) -> None:
    cache: AsyncCache[str, dict[str, int]] = AsyncCache(ttl=lambda v: v["max_age"], timer=clock)

    async def fetch(max_age: int) -> dict[str, int]:
        return {"max_age": max_age}

    await cache.get_or_compute("short", lambda: fetch(5))
    await cache.get_or_compute("long", lambda: fetch(50))
    clock.tick(5)
    assert ("short" in cache, "long" in cache) == (False, True)


async def test_a_ttl_function_that_fails_fails_the_flight_not_the_cache() -> None:
    cache: AsyncCache[str, int] = AsyncCache(ttl=lambda v: -1)

    async def one() -> int:
        return 1

    with pytest.raises(ValueError, match=r"^ttl\(value\) must be >= 0 seconds or None, got -1$"):
        await cache.get_or_compute("k", one)
    assert cache.loading() == {}
    assert_stats(cache, load_failures=1, loads_running=0)


async def test_is_negative_results_are_kept_for_negative_ttl(clock: FakeClock) -> None:
    cache: AsyncCache[str, list[int]] = AsyncCache(
        ttl=60, negative_ttl=5, is_negative=lambda v: v == [], timer=clock
    )

    async def empty() -> list[int]:
        return []

    async def full() -> list[int]:
        return [1]

    await cache.get_or_compute("none", empty)
    await cache.get_or_compute("some", full)
    clock.tick(5)
    assert ("none" in cache, "some" in cache) == (False, True)
    without_negative_ttl: AsyncCache[str, list[int]] = AsyncCache(
        ttl=60, is_negative=lambda v: not v
    )
    await without_negative_ttl.get_or_compute("none", empty)
    assert "none" not in without_negative_ttl  # "absent" is not cached at all then


async def test_stale_if_error_serves_the_old_value_while_reloads_fail_then_expires(
    clock: FakeClock,
) -> None:
    cache: AsyncCache[str, str] = AsyncCache(ttl=10, stale_if_error=30, timer=clock)
    load = Loader()
    assert await cache.get_or_compute("k", load) == "v1"
    load.fail, load.gate = True, asyncio.Event()
    clock.tick(11)  # expired: callers wait for the reload (no stale_ttl)...
    callers = [asyncio.create_task(cache.get_or_compute("k", load)) for _ in range(3)]
    await settle()
    assert not any(c.done() for c in callers)
    load.gate.set()
    assert [await c for c in callers] == ["v1", "v1", "v1"]  # ...and get v1, not the error
    assert_stats(cache, misses=2, coalesced=2, load_failures=1, stale_if_error_hits=3)
    clock.tick(10)  # without negative_ttl every caller past the ttl asks the upstream again
    assert await cache.get_or_compute("k", load) == "v1"
    assert load.calls == 3
    load.fail = False
    assert await cache.get_or_compute("k", load) == "v4"  # recovery replaces the old value
    assert await cache.get_or_compute("k", load) == "v4"
    load.fail = True
    clock.tick(41)  # past ttl + stale_if_error: the old value is gone, the error shows
    with pytest.raises(ConnectionError, match="down at call 5"):
        await cache.get_or_compute("k", load)


async def test_stale_if_error_with_negative_ttl_spares_the_upstream(clock: FakeClock) -> None:
    cache: AsyncCache[str, str] = AsyncCache(ttl=10, stale_if_error=60, negative_ttl=5, timer=clock)
    load = Loader()
    await cache.get_or_compute("k", load)
    load.fail = True
    clock.tick(11)
    assert await cache.get_or_compute("k", load) == "v1"  # the reload failed
    clock.tick(4)  # its failure is negatively cached: served at once, nothing asked
    assert [await cache.get_or_compute("k", load) for _ in range(10)] == ["v1"] * 10
    assert load.calls == 2
    assert "k" not in cache  # served as a fallback, not fresh
    assert_stats(cache, stale_if_error_hits=11, stale_hits=10, hits=10, misses=2)
    clock.tick(1)  # negative_ttl over: the next caller reloads (and fails again)
    assert await cache.get_or_compute("k", load) == "v1"
    assert load.calls == 3


async def test_stale_if_error_never_masks_a_reload_of_an_invalidated_key(
    clock: FakeClock,
) -> None:
    cache: AsyncCache[str, str] = AsyncCache(ttl=10, stale_if_error=30, timer=clock)
    load = Loader()
    await cache.get_or_compute("k", load)
    load.fail = True
    clock.tick(11)
    cache.invalidate("k")  # the old value is gone on purpose: nothing to fall back to
    with pytest.raises(ConnectionError):
        await cache.get_or_compute("k", load)


async def test_stale_ttl_and_stale_if_error_combine(clock: FakeClock) -> None:
    cache: AsyncCache[str, str] = AsyncCache(ttl=10, stale_ttl=5, stale_if_error=20, timer=clock)
    load = Loader()
    await cache.get_or_compute("k", load)
    load.fail = True
    clock.tick(12)  # stale: served at once, the background refresh fails
    assert await cache.get_or_compute("k", load) == "v1"
    await settle()
    assert_stats(cache, refresh_failures=1, stale_hits=1)
    clock.tick(6)  # past the stale window, within the error grace: a waited reload, masked
    assert await cache.get_or_compute("k", load) == "v1"
    clock.tick(13)  # past ttl + stale_if_error
    with pytest.raises(ConnectionError):
        await cache.get_or_compute("k", load)
    assert load.calls == 4


def test_stale_if_error_needs_a_ttl() -> None:
    with pytest.raises(ValueError, match=r"^stale_if_error needs a ttl to count from"):
        AsyncCache(stale_if_error=5)
    with pytest.raises(ValueError, match=r"stale_if_error must be"):
        AsyncCache(ttl=1, stale_if_error=-1)


# ---------------------------------------------------------------------- per-call ttl


def ready(value: str) -> Any:
    """A compute that answers at once."""

    async def compute() -> str:
        return value

    return compute


async def test_a_per_call_ttl_replaces_the_caches_ttl_for_the_value_it_loads(
    clock: FakeClock,
) -> None:
    cache: AsyncCache[str, str] = AsyncCache(ttl=60, timer=clock)
    assert await cache.get_or_compute("k", ready("short"), ttl=5) == "short"
    assert await cache.get_or_compute("j", ready("long")) == "long"
    clock.tick(5)
    assert "k" not in cache and "j" in cache
    assert await cache.get_or_compute("k", ready("again")) == "again"
    clock.tick(54)
    assert "k" in cache  # reloaded without a per-call ttl: the cache's 60 s


async def test_a_per_call_ttl_may_depend_on_the_value_and_is_negative_still_wins(
    clock: FakeClock,
) -> None:
    cache: AsyncCache[str, str | None] = AsyncCache(
        ttl=60, negative_ttl=1, is_negative=lambda v: v is None, timer=clock
    )

    async def found() -> str:
        return "max-age=30"

    async def absent() -> None:
        return None

    assert await cache.get_or_compute("k", found, ttl=lambda v: float(v.split("=")[1])) == (
        "max-age=30"
    )
    assert await cache.get_or_compute("gone", absent, ttl=30) is None
    clock.tick(1)
    assert "gone" not in cache and "k" in cache
    clock.tick(29)
    assert "k" not in cache


async def test_a_joining_call_gets_what_the_running_computation_lands_with(
    clock: FakeClock,
) -> None:
    cache: AsyncCache[str, str] = AsyncCache(ttl=60, timer=clock)
    gate = Gate("v")
    first = asyncio.create_task(cache.get_or_compute("k", gate, ttl=5))
    await gate.started.wait()
    second = asyncio.create_task(cache.get_or_compute("k", gate, ttl=50))
    await settle()
    gate.release.set()
    assert await first == await second == "v"
    assert gate.calls == 1
    clock.tick(5)
    assert "k" not in cache  # the first call's ttl: the one whose computation ran


@pytest.mark.parametrize(
    ("ttl", "error"), [(-1, ValueError), (float("nan"), ValueError), ("5", TypeError)]
)
async def test_a_bad_per_call_ttl_is_refused_even_on_a_hit(ttl: Any, error: type) -> None:
    cache: AsyncCache[str, str] = AsyncCache(ttl=60)
    await cache.get_or_compute("k", ready("v"))
    with pytest.raises(error, match=r"^ttl must be"):
        await cache.get_or_compute("k", ready("w"), ttl=ttl)


async def test_a_per_call_ttl_that_raises_fails_that_load_only() -> None:
    cache: AsyncCache[str, str] = AsyncCache(ttl=60)

    def broken(value: str) -> float:
        raise ArithmeticError("bad header")

    with pytest.raises(ArithmeticError, match="bad header"):
        await cache.get_or_compute("k", ready("v"), ttl=broken)
    assert "k" not in cache
    assert await cache.get_or_compute("k", ready("w")) == "w"
