"""@async_cached_many: a bulk loader (keys -> mapping) behind a per-key cache (DataLoader).

The decorated function takes a list of keys and returns a mapping from key to value; the
wrapper takes any iterable of keys and returns a dict in their order, loading only the
keys that are neither cached nor in flight, through `AsyncCache.get_many`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterable, Mapping
from typing import Any, Protocol, TypeVar, Unpack

from ._cache import AsyncCache
from ._config import CacheConfig, CacheOptions, with_option_reference
from ._decorator import cache_clear_of
from ._stats import CacheStats

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BulkCachedFunction(Protocol[K, V]):
    """What `@async_cached_many` returns: the bulk function, plus its cache's controls."""

    cache: AsyncCache[K, V]

    def __call__(self, keys: Iterable[K], /) -> Coroutine[Any, Any, dict[K, V]]: ...

    def invalidate(self, key: K, /) -> bool: ...

    def cache_clear(self) -> None: ...

    def cache_info(self) -> CacheStats: ...


def async_cached_many(
    **options: Unpack[CacheOptions],
) -> Callable[[Callable[[list[K]], Awaitable[Mapping[K, V]]]], BulkCachedFunction[K, V]]:
    """Cache a bulk loader per key: `@async_cached_many(ttl=60)` over
    `async def users(ids: list[int]) -> dict[int, User]`.

    A call `await users([3, 1, 2])` returns `{3: ..., 1: ..., 2: ...}`; the function itself
    is called with the missing keys only, once for all of them, and concurrent calls with
    overlapping keys load each key once. A key the mapping lacks fails with KeyError. The
    wrapper has `.cache`, `.invalidate(key)`, `.cache_clear()` (the entries and the
    counters) and `.cache_info()`.

    With shared=, the fleet loads each key once: one round trip reads (and locks) every
    key missing from L1, one call loads the keys no worker is loading, and the others are
    joined. AsyncCache's options:
    {options}
    """
    if options.get("store") is None:
        CacheConfig(**options)  # bad options fail here, before any function is decorated

    def decorator(
        func: Callable[[list[K]], Awaitable[Mapping[K, V]]],
    ) -> BulkCachedFunction[K, V]:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"@async_cached_many needs an async def function, got {func!r}")
        cache: AsyncCache[K, V] = AsyncCache(**options)

        async def wrapper(keys: Iterable[K], /) -> dict[K, V]:
            return await cache.get_many(keys, func)

        functools.update_wrapper(wrapper, func)
        wrapper.cache = cache  # type: ignore[attr-defined]
        wrapper.invalidate = cache.invalidate  # type: ignore[attr-defined]
        wrapper.cache_clear = cache_clear_of(cache)  # type: ignore[attr-defined]
        wrapper.cache_info = cache.stats  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


async_cached_many.__doc__ = with_option_reference(async_cached_many.__doc__)
