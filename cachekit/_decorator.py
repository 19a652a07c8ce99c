"""@async_cached: arguments -> key -> AsyncCache, with the hit path inlined per signature.

The hit path is the product, so a decorated function with a fixed signature gets a
wrapper generated for that signature (as dataclasses and attrs generate __init__): it
takes the same parameters, so no *args tuple or **kwargs dict is built, and a hit is a
dict lookup, a clock read, a list append and a slot read. Everything else, misses
included, goes through `AsyncCache._join`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Callable, Coroutine, Hashable
from types import CoroutineType
from typing import (
    Any,
    Concatenate,
    Final,
    Generic,
    ParamSpec,
    Protocol,
    TypeVar,
    Unpack,
    overload,
)

from ._cache import AsyncCache, unhashable
from ._config import CacheConfig, CacheOptions, with_option_reference
from ._expiry import Entry
from ._flights import Restart
from ._keys import fixed_key_source, has_fixed_signature, make_key
from ._stats import CacheStats

P = ParamSpec("P")
P2 = ParamSpec("P2")
S = TypeVar("S")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

_PREFIX: Final = "_ck_"

# The generated hit path. `{now}` is `_ck_timer()` for an injected clock and
# `_time.monotonic()` for the default one (looked up per call: freezegun replaces it).
# A miss gets a future to await (a coroutine, when it leads with a shared tier), or the
# entry itself when its outcome is known at once (see AsyncCache._join).
_TEMPLATE: Final = """
def _ck_factory(_ck_func, _ck_entries, _ck_touched, _ck_drain, _ck_join, _ck_retry, _ck_timer):
    _ck_get = _ck_entries.get
    _ck_touch = _ck_touched.append

    async def _ck_wrapper({params}):
        _ck_key = {key}
        try:
            _ck_entry = _ck_get(_ck_key)
        except TypeError:
            raise _ck_unhashable(_ck_key) from None
        if _ck_entry is not None and _ck_entry.expires_at > {now}:
            _ck_touch(_ck_key)
            if len(_ck_touched) >= {drain_at}:
                _ck_drain()
            return _ck_entry.value
        _ck_compute = lambda: _ck_func({call})
        try:
            _ck_pending = _ck_join(_ck_key, _ck_compute)
            if type(_ck_pending) is _ck_Future or type(_ck_pending) is _ck_Coroutine:
                return await _ck_pending
            return _ck_pending.value
        except _ck_Restart:
            return await _ck_retry(_ck_key, _ck_compute)

    def _ck_make_key({params}):
        return {key}

    return _ck_wrapper, _ck_make_key
"""


class CachedFunction(Protocol, Generic[P, R_co]):
    """What `@async_cached` returns: the function, plus its cache's controls."""

    cache: AsyncCache[Hashable, Any]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R_co]: ...

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> Hashable: ...

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool: ...

    def cache_clear(self) -> None: ...

    def cache_info(self) -> CacheStats: ...

    # Decorating a method: reading it from an instance binds `self`, like a function.
    @overload
    def __get__(
        self, instance: None, owner: type[Any] | None = None
    ) -> CachedFunction[P, R_co]: ...

    @overload
    def __get__(
        self: CachedFunction[Concatenate[S, P2], R_co],
        instance: S,
        owner: type[Any] | None = None,
    ) -> Callable[P2, Coroutine[Any, Any, R_co]]: ...


def is_async_callable(func: object) -> bool:
    """An `async def` function, or a callable that returns a coroutine by its nature: a
    `functools.partial` of one, or an object whose class has an `async def __call__`."""
    if inspect.iscoroutinefunction(func):  # unwraps partials too
        return True
    call = inspect.getattr_static(type(func), "__call__", None)
    return not inspect.isfunction(func) and inspect.iscoroutinefunction(call)


def _signature_wrapper(
    func: Callable[..., Any], cache: AsyncCache[Any, Any], typed: bool
) -> tuple[Callable[..., Any], Callable[..., Hashable]] | None:
    """A wrapper and key builder generated for `func`'s own parameters, if it has fixed ones."""
    if not has_fixed_signature(func):
        return None
    params = list(inspect.signature(func).parameters.values())
    if any(p.name.startswith(_PREFIX) for p in params):
        return None
    kind = inspect.Parameter
    text: list[str] = []
    call: list[str] = []
    for i, p in enumerate(params):
        if p.kind is kind.KEYWORD_ONLY and (i == 0 or params[i - 1].kind is not kind.KEYWORD_ONLY):
            text.append("*")
        text.append(p.name)
        call.append(f"{p.name}={p.name}" if p.kind is kind.KEYWORD_ONLY else p.name)
        last_positional_only = p.kind is kind.POSITIONAL_ONLY and (
            i + 1 == len(params) or params[i + 1].kind is not kind.POSITIONAL_ONLY
        )
        if last_positional_only:
            text.append("/")
    bound = cache._hit_path()
    source = _TEMPLATE.format(
        params=", ".join(text),
        call=", ".join(call),
        key=fixed_key_source(params, typed),
        now="_time.monotonic()" if bound.timer is None else "_ck_timer()",
        drain_at=bound.drain_at,
    )
    namespace: dict[str, Any] = {}
    exec(
        source,
        {
            "_time": time,
            "_ck_unhashable": unhashable,
            "_ck_Restart": Restart,
            "_ck_Future": asyncio.Future,
            "_ck_Coroutine": CoroutineType,
        },
        namespace,
    )
    factory = namespace["_ck_factory"]
    wrapper, key_of = factory(
        func, bound.entries, bound.touched, bound.drain, bound.join, bound.retry, bound.timer
    )
    for generated in (wrapper, key_of):
        generated.__defaults__ = func.__defaults__
        generated.__kwdefaults__ = func.__kwdefaults__
    return wrapper, key_of


def _generic_wrapper(
    func: Callable[..., Any],
    cache: AsyncCache[Any, Any],
    key_of: Callable[..., Hashable],
) -> Callable[..., Any]:
    """The wrapper for *args/**kwargs functions and for a user-supplied `key=`."""
    entries, touched, drain_at, drain, join, retry, timer = cache._hit_path()  # locals: fast
    get = entries.get

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = key_of(*args, **kwargs)
        try:
            entry = get(key)
        except TypeError:
            raise unhashable(key) from None
        # time.monotonic is looked up per call, as freezegun and mock.patch replace it.
        if entry is not None and entry.expires_at > (
            time.monotonic() if timer is None else timer()
        ):
            touched.append(key)
            if len(touched) >= drain_at:
                drain()
            return entry.value
        compute = lambda: func(*args, **kwargs)  # noqa: E731
        try:
            pending = join(key, compute)
            if isinstance(pending, Entry):  # known at once: its value, or a Failure raises
                return pending.value
            return await pending
        except Restart:
            return await retry(key, compute)

    return wrapper


def _decorate(
    func: Callable[P, Coroutine[Any, Any, R]],
    key: Callable[..., Hashable] | None,
    typed: bool,
    options: dict[str, Any],
) -> CachedFunction[P, R]:
    if isinstance(func, classmethod | staticmethod):
        # Cache the underlying function, then rewrap it: the key then includes `cls`.
        inner = _decorate(func.__func__, key, typed, options)
        return type(func)(inner)  # type: ignore[return-value]
    if not is_async_callable(func):
        raise TypeError(f"@async_cached needs an async def function, got {func!r}")
    if key is not None and not callable(key):
        raise TypeError(f"key must be a callable building the key from the arguments, got {key!r}")
    if options.get("shared") is not None and options.get("name") is None:
        named = inspect.unwrap(getattr(func, "func", func))  # a partial's own function
        qualname = getattr(named, "__qualname__", type(named).__qualname__)
        options["name"] = f"{named.__module__}.{qualname}"  # the same in every worker
    cache: AsyncCache[Any, Any] = AsyncCache(**options)
    generated = (
        _signature_wrapper(func, cache, typed) if key is None and inspect.isfunction(func) else None
    )
    if generated is not None:
        wrapper, key_of = generated
    else:
        if key is None:

            def key_of(*args: Any, **kwargs: Any) -> Hashable:
                return make_key(args, kwargs, typed)
        else:
            key_of = key
        wrapper = _generic_wrapper(func, cache, key_of)
    functools.update_wrapper(wrapper, func)

    def invalidate(*args: Any, **kwargs: Any) -> bool:
        return cache.invalidate(key_of(*args, **kwargs))

    wrapper.cache = cache  # type: ignore[attr-defined]
    wrapper.cache_key = key_of  # type: ignore[attr-defined]
    wrapper.invalidate = invalidate  # type: ignore[attr-defined]
    wrapper.cache_clear = cache_clear_of(cache)  # type: ignore[attr-defined]
    wrapper.cache_info = cache.stats  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def cache_clear_of(cache: AsyncCache[Any, Any]) -> Callable[[], None]:
    """A decorated function's `cache_clear()`: the entries and the counters, as in functools."""

    def cache_clear() -> None:
        cache.clear()
        cache.reset_stats()

    return cache_clear


@overload
def async_cached(func: Callable[P, Coroutine[Any, Any, R]], /) -> CachedFunction[P, R]: ...


@overload
def async_cached(
    *,
    key: Callable[..., Hashable] | None = None,
    typed: bool = False,
    **options: Unpack[CacheOptions],
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], CachedFunction[P, R]]: ...


def async_cached(
    func: Callable[P, Coroutine[Any, Any, R]] | None = None,
    /,
    *,
    key: Callable[..., Hashable] | None = None,
    typed: bool = False,
    **options: Unpack[CacheOptions],
) -> CachedFunction[P, R] | Callable[[Callable[P, Coroutine[Any, Any, R]]], CachedFunction[P, R]]:
    """Memoize an async function in an `AsyncCache`: one computation per key at a time.

    Usable bare (`@async_cached`) or with options (`@async_cached(ttl=60)`), on functions,
    methods, classmethods, staticmethods, `functools.partial` objects of async functions
    and objects with an `async def __call__`. The decorated function has `.cache`,
    `.cache_key(*args)`, `.invalidate(*args)` (for a method, through the class with the
    instance first: `Repo.find.invalidate(repo, 1)`), `.cache_clear()` (the entries and
    the counters, as in functools) and `.cache_info()` (a CacheStats).

    Options of the decorator itself:

    key: Callable[..., Hashable] | None = None
        Builds the key from the call's arguments. None: the arguments themselves, bound
        by name for a function with named parameters.
    typed: bool = False
        Arguments of different types are cached apart (1 and 1.0), as in functools.

    AsyncCache's options, which the decorator passes on (name defaults to the function's
    module and qualified name with shared=):
    {options}
    """
    if options.get("store") is None:
        # Bad options fail here, before any function is decorated. (A store can back one
        # cache only, and a shared tier binds each cache by name, so those are checked
        # when the function is decorated.)
        unshared: CacheOptions = {**options, "shared": None}
        CacheConfig(**unshared)
    if func is not None:
        return _decorate(func, key, typed, dict(options))

    def decorator(f: Callable[P, Coroutine[Any, Any, R]]) -> CachedFunction[P, R]:
        return _decorate(f, key, typed, dict(options))

    return decorator


async_cached.__doc__ = with_option_reference(async_cached.__doc__)
