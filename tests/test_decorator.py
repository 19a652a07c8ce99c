"""@async_cached: keys from arguments, methods, options, and the controls it attaches."""

from __future__ import annotations

import asyncio
import datetime
import functools
import inspect
from typing import Any

import pytest
from freezegun import freeze_time

from cachekit import AsyncCache, async_cached

from .conftest import FakeClock, assert_stats


class Counter:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []


async def test_bare_decorator_caches() -> None:
    seen = Counter()

    @async_cached
    async def double(x: int) -> int:
        seen.calls.append((x,))
        return 2 * x

    assert [await double(2), await double(2), await double(3)] == [4, 4, 6]
    assert seen.calls == [(2,), (3,)]
    assert isinstance(double.cache, AsyncCache)
    assert_stats(double.cache, hits=1, misses=2)
    assert double.cache_info().hits == 1


async def test_positional_keyword_and_default_spellings_share_one_key() -> None:
    seen = Counter()

    @async_cached(ttl=60)
    async def fetch(a: int, b: int = 5, *, c: str = "x") -> tuple[int, int, str]:
        seen.calls.append((a, b, c))
        return a, b, c

    r1 = await fetch(1)
    r2 = await fetch(a=1)
    r3 = await fetch(1, 5, c="x")
    r4 = await fetch(c="x", b=5, a=1)
    assert r1 == r2 == r3 == r4 == (1, 5, "x")
    assert len(seen.calls) == 1
    await fetch(1, c="y")
    assert len(seen.calls) == 2
    assert fetch.cache_key(1) == fetch.cache_key(b=5, a=1)


async def test_variadic_function_ignores_keyword_order() -> None:
    seen = Counter()

    @async_cached
    async def anything(*args: Any, **kwargs: Any) -> int:
        seen.calls.append(args)
        return len(args) + len(kwargs)

    assert await anything(1, x=1, y=2) == 3
    assert await anything(1, y=2, x=1) == 3
    assert await anything((1,)) == 1  # one tuple argument is not the call anything(1)
    assert await anything(1) == 1
    assert len(seen.calls) == 3


async def test_positional_only_and_typed() -> None:
    seen = Counter()

    @async_cached(typed=True)
    async def f(x: float, /) -> str:
        seen.calls.append((x,))
        return repr(x)

    assert await f(1) == "1"
    assert await f(1.0) == "1.0"  # typed: 1 and 1.0 are cached apart
    assert await f(1) == "1"
    assert len(seen.calls) == 2


async def test_custom_key_function() -> None:
    seen = Counter()

    @async_cached(key=lambda user, request_id: user)
    async def profile(user: str, request_id: int) -> str:
        seen.calls.append((user, request_id))
        return user.upper()

    assert await profile("ann", 1) == "ANN"
    assert await profile("ann", 2) == "ANN"
    assert seen.calls == [("ann", 1)]
    assert profile.invalidate("ann", 0) is True
    assert await profile("ann", 3) == "ANN"
    assert len(seen.calls) == 2


async def test_unhashable_argument_raises_type_error_naming_its_type() -> None:
    @async_cached
    async def f(items: list[int]) -> int:
        return sum(items)

    with pytest.raises(TypeError, match=r"argument of type 'list'"):
        await f([1, 2])

    @async_cached
    async def g(*args: Any) -> int:
        return 0

    with pytest.raises(TypeError, match=r"argument of type 'dict'"):
        await g(1, {"a": 1})


async def test_invalidate_and_cache_clear() -> None:
    seen = Counter()

    @async_cached(ttl=60)
    async def f(x: int) -> int:
        seen.calls.append((x,))
        return x

    await f(1)
    await f(2)
    assert f.invalidate(1) is True
    assert f.invalidate(1) is False
    await f(1)
    await f(2)
    assert len(seen.calls) == 3
    f.cache_clear()
    await f(2)
    assert len(seen.calls) == 4


async def test_methods_classmethods_and_staticmethods() -> None:
    calls: list[str] = []

    class Repo:
        def __init__(self, name: str) -> None:
            self.name = name

        @async_cached
        async def get(self, key: int) -> str:
            calls.append(f"{self.name}.get({key})")
            return f"{self.name}:{key}"

        @classmethod
        @async_cached
        async def build(cls, key: int) -> str:
            calls.append(f"build({key})")
            return f"{cls.__name__}:{key}"

        @async_cached
        @staticmethod
        async def pure(key: int) -> int:
            calls.append(f"pure({key})")
            return key

    a, b = Repo("a"), Repo("b")
    assert await a.get(1) == "a:1"
    assert await a.get(1) == "a:1"
    assert await b.get(1) == "b:1"  # self is part of the key
    assert await Repo.build(2) == await Repo.build(2) == "Repo:2"
    assert await a.pure(3) == await Repo.pure(3) == 3
    assert calls == ["a.get(1)", "b.get(1)", "build(2)", "pure(3)"]
    assert Repo.get.invalidate(a, 1) is True


def test_signature_and_metadata_survive() -> None:
    async def original(user_id: int, *, verbose: bool = False) -> str:
        """Docstring."""
        return str(user_id)

    wrapped = async_cached(original)
    assert wrapped.__name__ == "original"
    assert wrapped.__doc__ == "Docstring."
    assert wrapped.__wrapped__ is original  # type: ignore[attr-defined]
    assert inspect.signature(wrapped) == inspect.signature(original)
    assert inspect.iscoroutinefunction(wrapped)


def test_non_async_function_is_rejected_at_decoration() -> None:
    def sync(x: int) -> int:
        return x

    with pytest.raises(TypeError, match=r"^@async_cached needs an async def function, got "):
        async_cached(sync)  # type: ignore[arg-type]


def test_bad_options_fail_at_decoration() -> None:
    with pytest.raises(ValueError, match=r"^ttl must be >= 0 seconds or None, got -5$"):
        async_cached(ttl=-5)
    with pytest.raises(ValueError, match=r"^maxsize must be > 0 or None, got 0$"):
        async_cached(maxsize=0)
    with pytest.raises(ValueError, match=r"^policy must be one of"):
        async_cached(policy="nope")


async def test_injected_timer_drives_the_hit_path(clock: FakeClock) -> None:
    seen = Counter()

    @async_cached(ttl=10, timer=clock)
    async def f(x: int) -> int:
        seen.calls.append((x,))
        return x

    await f(1)
    clock.tick(9.5)
    await f(1)
    clock.tick(0.5)
    await f(1)
    assert len(seen.calls) == 2
    assert_stats(f.cache, hits=1, misses=2, expirations=1)


async def test_default_clock_hit_path_follows_freezegun() -> None:
    seen = Counter()
    with freeze_time("2026-01-01", real_asyncio=True) as frozen:

        @async_cached(ttl=10)
        async def f(x: int) -> int:
            seen.calls.append((x,))
            return x

        @async_cached(ttl=10)
        async def g(*args: int) -> int:
            seen.calls.append(args)
            return 0

        await f(1)
        await g(1)
        frozen.tick(9)
        await f(1)
        await g(1)
        assert len(seen.calls) == 2
        frozen.tick(1)
        await f(1)
        await g(1)
        assert len(seen.calls) == 4


async def test_negative_caching_through_the_decorator(clock: FakeClock) -> None:
    attempts = 0

    @async_cached(ttl=60, negative_ttl=5, timer=clock)
    async def flaky(x: int) -> int:
        nonlocal attempts
        attempts += 1
        raise ConnectionError(f"down {attempts}")

    for _ in range(3):
        with pytest.raises(ConnectionError, match=r"^down 1$"):
            await flaky(1)
    clock.tick(5)
    with pytest.raises(ConnectionError, match=r"^down 2$"):
        await flaky(1)


async def test_concurrent_decorated_calls_coalesce() -> None:
    release = asyncio.Event()
    calls = 0

    @async_cached
    async def slow(x: int) -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return x

    tasks = [asyncio.create_task(slow(7)) for _ in range(100)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*tasks) == [7] * 100
    assert calls == 1
    assert_stats(slow.cache, misses=1, coalesced=99)


async def test_a_parameter_named_like_the_generated_locals_still_works() -> None:
    @async_cached
    async def f(_ck_key: int, entry: int = 0) -> int:
        return _ck_key + entry

    assert await f(1, entry=2) == 3
    assert await f(1, 2) == 3
    assert_stats(f.cache, hits=0, misses=2)  # variadic-style key: positional != keyword


# ------------------------------------------------------------------ habits users bring


async def test_cache_clear_resets_the_statistics_as_functools_does() -> None:
    @async_cached(ttl=60)
    async def square(x: int) -> int:
        return x * x

    await square(2)
    await square(2)
    assert (square.cache_info().hits, square.cache_info().misses) == (1, 1)
    square.cache_clear()
    assert (square.cache_info().hits, square.cache_info().misses) == (0, 0)
    assert square.cache_info().currsize == 0


async def test_async_cache_resets_its_counters_on_request_only() -> None:
    cache: AsyncCache[str, str] = AsyncCache()

    async def value() -> str:
        return "v"

    await cache.get_or_compute("k", value)
    await cache.get_or_compute("k", value)
    cache.clear()  # entries only
    assert (cache.stats().hits, cache.stats().misses) == (1, 1)
    await cache.get_or_compute("k", value)
    cache.reset_stats()
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.load_count, stats.currsize) == (0, 0, 0, 1)


async def test_a_partial_of_an_async_function_is_cached() -> None:
    calls = 0

    async def scaled(factor: int, x: int) -> int:
        nonlocal calls
        calls += 1
        return factor * x

    triple = async_cached(ttl=60)(functools.partial(scaled, 3))
    assert [await triple(2), await triple(2), await triple(x=2)] == [6, 6, 6]
    assert calls == 2  # x=2 by keyword is another key for a *args/**kwargs callable
    assert triple.invalidate(2) is True


async def test_a_callable_object_with_an_async_call_is_cached() -> None:
    class Fetcher:
        def __init__(self) -> None:
            self.calls = 0

        async def __call__(self, x: int) -> int:
            self.calls += 1
            return x + 1

    fetcher = Fetcher()
    cached = async_cached(fetcher)
    assert [await cached(1), await cached(1)] == [2, 2]
    assert fetcher.calls == 1


@pytest.mark.parametrize(
    "func",
    [functools.partial(lambda x: x, 1), type("Sync", (), {"__call__": lambda self: 1})()],
    ids=["partial of a sync function", "object with a sync __call__"],
)
def test_a_callable_that_is_not_async_is_a_type_error(func: Any) -> None:
    with pytest.raises(TypeError, match=r"^@async_cached needs an async def function, got "):
        async_cached(func)


async def test_durations_accept_timedelta(clock: FakeClock) -> None:
    cache: AsyncCache[str, int] = AsyncCache(
        ttl=datetime.timedelta(minutes=1), negative_ttl=datetime.timedelta(seconds=5), timer=clock
    )
    calls = 0

    async def count() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await cache.get_or_compute("k", count) == 1
    clock.tick(59)
    assert await cache.get_or_compute("k", count) == 1
    clock.tick(2)
    assert await cache.get_or_compute("k", count) == 2
    cache.set("s", 7, ttl=datetime.timedelta(seconds=10))
    got = await cache.get_or_compute("p", count, ttl=datetime.timedelta(seconds=3))
    clock.tick(4)
    assert ("s" in cache, "p" in cache, got) == (True, False, 3)


def test_options_after_maxsize_are_keyword_only() -> None:
    assert AsyncCache(10).stats().maxsize == 10  # maxsize stays positional, as in lru_cache
    with pytest.raises(TypeError):
        AsyncCache(10, 60)  # type: ignore[misc]


async def test_a_classmethod_is_invalidated_through_its_class() -> None:
    calls = 0

    class Repo:
        @async_cached
        @classmethod
        async def load(cls, key: int) -> str:
            nonlocal calls
            calls += 1
            return f"{cls.__name__}:{key}"

    assert await Repo.load(1) == "Repo:1"
    assert await Repo.load(1) == "Repo:1"
    assert Repo.load.invalidate(Repo, 1) is True
    assert await Repo.load(1) == "Repo:1"
    assert calls == 2
