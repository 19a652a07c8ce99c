"""Adapters: each builds "a decorated async function with maxsize M and ttl T (or no ttl)".

Every system, the two floors included, is one `Adapter` whose `build(loader, ...)` returns the
decorated function and an optional async cleanup. The scenarios never touch a library's API
directly, so a comparison is always the same call shape: `await fn(key)`.

Floors:
  bare  the undecorated coroutine function, awaited directly (what any cache costs on top of)
  dict  a hand-written `d.get(x)` memo inside one `async def`: no TTL, no eviction, no lock

A peer that is not installed, or whose import fails, is reported as "skipped: <reason>".
cachekit is used through its public API only.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

Loader = Callable[[int], Awaitable[Any]]
Cached = Callable[[int], Awaitable[Any]]
Cleanup = Callable[[], Awaitable[None]] | None
Timer = Callable[[], float]


@dataclass(frozen=True)
class Options:
    """What a scenario asks for. `timer` is honoured only by adapters with `clock=True`."""

    maxsize: int
    ttl: float | None
    timer: Timer | None = None
    negative_ttl: float | None = None  # cachekit only: the failure table's extra row


@dataclass
class Adapter:
    name: str
    distribution: str | None  # PyPI name, for the version column; None for the floors
    modules: tuple[str, ...]  # imported to decide available / skipped
    make: Callable[[Loader, Options], tuple[Cached, Cleanup]]
    clock: bool = False  # accepts an injected clock for ttl (expiry tests without sleeping)
    bounded: bool = True  # honours maxsize
    note: str = ""
    floor: bool = False
    version: str = ""
    skipped: str | None = field(default=None)

    def probe(self) -> bool:
        """Import the library once; remember why not if it fails."""
        try:
            for module in self.modules:
                importlib.import_module(module)
            if self.distribution is not None:
                self.version = importlib.metadata.version(self.distribution)
        except Exception as exc:  # any import failure is a reason to skip, reported as such
            self.skipped = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
            return False
        return True

    def build(self, loader: Loader, options: Options) -> tuple[Cached, Cleanup]:
        return self.make(loader, options)


# --- floors -----------------------------------------------------------------------------------


def _bare(loader: Loader, options: Options) -> tuple[Cached, Cleanup]:
    return loader, None


def _dict(loader: Loader, options: Options) -> tuple[Cached, Cleanup]:
    memo: dict[int, Any] = {}
    get = memo.get

    async def memoized(x: int) -> Any:
        value = get(x)
        if value is None:
            value = await loader(x)
            memo[x] = value
        return value

    return memoized, None


# --- cachekit ---------------------------------------------------------------------------------


def _cachekit(loader: Loader, options: Options) -> tuple[Cached, Cleanup]:
    from cachekit import async_cached

    kwargs: dict[str, Any] = {"ttl": options.ttl, "maxsize": options.maxsize}
    if options.timer is not None:
        kwargs["timer"] = options.timer
    if options.negative_ttl is not None:
        kwargs["negative_ttl"] = options.negative_ttl

    @async_cached(**kwargs)
    async def fn(x: int) -> Any:
        return await loader(x)

    return fn, None


# --- peers ------------------------------------------------------------------------------------


def _async_lru(loader: Loader, options: Options) -> tuple[Cached, Cleanup]:
    from async_lru import alru_cache

    @alru_cache(maxsize=options.maxsize, ttl=options.ttl)
    async def fn(x: int) -> Any:
        return await loader(x)

    async def cleanup() -> None:
        await fn.cache_close()

    return fn, cleanup


def _aiocache(stampede: bool) -> Callable[[Loader, Options], tuple[Cached, Cleanup]]:
    def make(loader: Loader, options: Options) -> tuple[Cached, Cleanup]:
        from aiocache import SimpleMemoryCache, cached, cached_stampede

        # SimpleMemoryCache has no size bound: maxsize cannot be honoured.
        if stampede:
            decorator = cached_stampede(ttl=options.ttl, cache=SimpleMemoryCache, lease=2)
        else:
            decorator = cached(ttl=options.ttl, cache=SimpleMemoryCache)

        @decorator
        async def fn(x: int) -> Any:
            return await loader(x)

        return fn, None

    return make


def _cashews(loader: Loader, options: Options) -> tuple[Cached, Cleanup]:
    from cashews import Cache

    cache = Cache()
    cache.setup(f"mem://?size={options.maxsize}")

    @cache(ttl=options.ttl)
    async def fn(x: int) -> Any:
        return await loader(x)

    async def cleanup() -> None:
        await cache.close()

    return fn, cleanup


def _cachetools_cache(options: Options) -> Any:
    import cachetools

    if options.ttl is None:
        return cachetools.LRUCache(maxsize=options.maxsize)
    if options.timer is not None:
        return cachetools.TTLCache(maxsize=options.maxsize, ttl=options.ttl, timer=options.timer)
    return cachetools.TTLCache(maxsize=options.maxsize, ttl=options.ttl)


def _asyncache(loader: Loader, options: Options) -> tuple[Cached, Cleanup]:
    from asyncache import cached

    @cached(_cachetools_cache(options))
    async def fn(x: int) -> Any:
        return await loader(x)

    return fn, None


def _cachetools_async(loader: Loader, options: Options) -> tuple[Cached, Cleanup]:
    from cachetools_async import cached

    @cached(_cachetools_cache(options))
    async def fn(x: int) -> Any:
        return await loader(x)

    return fn, None


def _theine(loader: Loader, options: Options) -> tuple[Cached, Cleanup]:
    from theine import Memoize

    ttl = None if options.ttl is None else timedelta(seconds=options.ttl)

    @Memoize(options.maxsize, ttl)
    async def fn(x: int) -> Any:
        return await loader(x)

    return fn, None


def _cachebox(loader: Loader, options: Options) -> tuple[Cached, Cleanup]:
    import cachebox

    store: Any
    if options.ttl is None:
        store = cachebox.LRUCache(options.maxsize)
    else:
        store = cachebox.TTLCache(options.maxsize, options.ttl)

    @cachebox.cached(store)
    async def fn(x: int) -> Any:
        return await loader(x)

    return fn, None


def _async_cache(loader: Loader, options: Options) -> tuple[Cached, Cleanup]:
    from cache import AsyncTTL

    @AsyncTTL(time_to_live=options.ttl, maxsize=options.maxsize)
    async def fn(x: int) -> Any:
        return await loader(x)

    return fn, None


def all_adapters() -> list[Adapter]:
    """Every system, floors first, in the order tables list them."""
    return [
        Adapter("bare", None, (), _bare, floor=True, note="undecorated coroutine"),
        Adapter("dict", None, (), _dict, floor=True, bounded=False, note="d.get(x) memo"),
        Adapter("cachekit", "cachekit-async", ("cachekit",), _cachekit, clock=True),
        Adapter("async-lru", "async-lru", ("async_lru",), _async_lru),
        Adapter(
            "aiocache",
            "aiocache",
            ("aiocache",),
            _aiocache(stampede=False),
            bounded=False,
            note="cached + SimpleMemoryCache (no maxsize)",
        ),
        Adapter(
            "aiocache-stampede",
            "aiocache",
            ("aiocache",),
            _aiocache(stampede=True),
            bounded=False,
            note="cached_stampede(lease=2) + SimpleMemoryCache (no maxsize)",
        ),
        Adapter("cashews", "cashews", ("cashews",), _cashews, note="mem:// backend"),
        Adapter(
            "asyncache",
            "asyncache",
            ("asyncache", "cachetools"),
            _asyncache,
            clock=True,
            note="cachetools LRUCache/TTLCache",
        ),
        Adapter(
            "cachetools-async",
            "cachetools-async",
            ("cachetools_async", "cachetools"),
            _cachetools_async,
            clock=True,
            note="cachetools LRUCache/TTLCache",
        ),
        Adapter("theine", "theine", ("theine",), _theine, note="Memoize"),
        Adapter("cachebox", "cachebox", ("cachebox",), _cachebox, note="LRUCache/TTLCache"),
        Adapter("async-cache", "async-cache", ("cache",), _async_cache, note="AsyncTTL"),
    ]
