"""The configuration of a cache: every option's meaning, default and check, written once.

`CacheOptions` types the keyword options that `AsyncCache`, `async_cached` and
`async_cached_many` take. `CacheConfig` is one set of them, validated and frozen: its fields
are the options with their defaults and their documentation (the docstrings' option
reference is generated from them), and its methods are the rules derived from them: how
long a value stays fresh, whether and how long a failure is cached, what entry a landing
value becomes. `AsyncCache` coordinates; what its options mean is decided here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from random import Random
from typing import TYPE_CHECKING, Any, TypedDict, final

import cachetools

from . import _store
from ._clock import default_timer
from ._expiry import NEVER, Entry, Failure, RefreshingEntry
from ._limits import LoadLimiter
from ._options import (
    Seconds,
    check_bool,
    check_exception_types,
    check_fraction,
    check_maxsize,
    check_seconds,
)
from ._shared import SharedTier
from ._store import Policy

if TYPE_CHECKING:
    from ._events import CacheEvent


class KeywordOptions(TypedDict, total=False):
    """The keyword-only options of `AsyncCache` (see `CacheConfig`)."""

    ttl: Seconds | Callable[[Any], Seconds | None] | None
    policy: Policy
    negative_ttl: Seconds | None
    negative_exceptions: tuple[type[BaseException], ...]
    timer: Callable[[], float] | None
    store: cachetools.Cache[Hashable, Any] | None
    cancel_abandoned: bool
    max_loads: int | LoadLimiter | None
    load_timeout: Seconds | None
    stale_ttl: Seconds | None
    refresh_after: Seconds | None
    ttl_jitter: float
    random: Random | None
    is_negative: Callable[[Any], bool] | None
    stale_if_error: Seconds | None
    on_event: Callable[[CacheEvent], object] | None
    shared: SharedTier | None
    name: str | None


class CacheOptions(KeywordOptions, total=False):
    """The options the decorators take: AsyncCache's, `maxsize` included."""

    maxsize: int | None


def _about(shown: str, meaning: str) -> dict[str, str]:
    """An option's metadata: its type as the reference shows it, and what it means."""
    return {"shown": shown, "meaning": meaning}


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CacheConfig:
    """One cache's options, validated at construction: ValueError for a bad value, TypeError
    for a wrong type, each naming the option and the value. Durations are seconds, as a
    number or a `datetime.timedelta`."""

    maxsize: int | None = field(
        default=1024,
        metadata=_about("int | None", "Completed entries held, an int > 0; None for unbounded."),
    )
    ttl: Seconds | Callable[[Any], Seconds | None] | None = field(
        default=None,
        metadata=_about(
            "duration | Callable[[value], duration | None] | None",
            "How long a result stays fresh, counted from when it lands on the cache's clock. "
            "None: it never expires; 0: nothing is kept (single flight only); a function is "
            "asked, as each value lands, for that value's ttl.",
        ),
    )
    policy: Policy = field(
        default="lru",
        metadata=_about(
            '"lru" | "lfu" | "fifo" | "rr" | "tinylfu"',
            "Which completed entry is evicted for room: the cachetools policies, or cachekit's "
            "W-TinyLFU (TinyLFUCache).",
        ),
    )
    negative_ttl: Seconds | None = field(
        default=None,
        metadata=_about(
            "duration | None",
            "How long a raised exception is cached and re-raised to later callers; None or 0: "
            "failures are never cached.",
        ),
    )
    negative_exceptions: tuple[type[BaseException], ...] = field(
        default=(Exception,),
        metadata=_about(
            "tuple[type[BaseException], ...]",
            "The exception types eligible for negative caching. Cancellation and other "
            "non-Exception errors never are.",
        ),
    )
    timer: Callable[[], float] | None = field(
        default=None,
        metadata=_about(
            "Callable[[], float] | None",
            "The clock, in seconds. None: time.monotonic, looked up at each call, so freezegun "
            "and mock.patch move it.",
        ),
    )
    store: cachetools.Cache[Hashable, Any] | None = field(
        default=None,
        metadata=_about(
            "cachetools.Cache | None",
            "An empty cachetools.Cache to hold the entries, in place of maxsize and policy (one "
            "sized with getsizeof weighs your values). One cache per store.",
        ),
    )
    cancel_abandoned: bool = field(
        default=False,
        metadata=_about(
            "bool",
            "Cancel a computation once every caller waiting for it was cancelled (nothing is "
            "stored). False: it runs on and its result is stored.",
        ),
    )
    max_loads: int | LoadLimiter | None = field(
        default=None,
        metadata=_about(
            "int | LoadLimiter | None",
            "At most this many computations at once (an int > 0, or a LoadLimiter shared by "
            "several caches); the others wait their turn, first come first served. None: no limit.",
        ),
    )
    load_timeout: Seconds | None = field(
        default=None,
        metadata=_about(
            "duration | None",
            "How long a computation may run before it is cancelled; its callers get "
            "LoadTimeoutError (a TimeoutError). None: no limit; must be > 0.",
        ),
    )
    stale_ttl: Seconds | None = field(
        default=None,
        metadata=_about(
            "duration | None",
            "How long after ttl an entry is still served at once while one background refresh "
            "runs (stale-while-revalidate). Needs a ttl.",
        ),
    )
    refresh_after: Seconds | None = field(
        default=None,
        metadata=_about(
            "duration | None",
            "After this long (> 0 and < ttl), a hit starts a background refresh ahead of expiry.",
        ),
    )
    ttl_jitter: float = field(
        default=0.0,
        metadata=_about(
            "float",
            "A fraction in [0, 1): each entry's ttl is shortened by a random part of it, so that "
            "entries written together do not expire together.",
        ),
    )
    random: Random | None = field(
        default=None,
        metadata=_about(
            "random.Random | None",
            "The source of the jitter; seed one in tests. None: a new Random().",
        ),
    )
    is_negative: Callable[[Any], bool] | None = field(
        default=None,
        metadata=_about(
            "Callable[[value], bool] | None",
            'Flags results that mean "absent" (an empty answer, say): those are kept for '
            "negative_ttl instead of ttl.",
        ),
    )
    stale_if_error: Seconds | None = field(
        default=None,
        metadata=_about(
            "duration | None",
            "How long after ttl a failed reload answers with the old value instead of the "
            "error (stale-if-error). Needs a ttl.",
        ),
    )
    on_event: Callable[[CacheEvent], object] | None = field(
        default=None,
        metadata=_about(
            "Callable[[CacheEvent], object] | None",
            "Called with a CacheEvent for each hit, miss, load, eviction, expiration, "
            "invalidation and refresh, outside the cache's lock. None: no events, no cost.",
        ),
    )
    shared: SharedTier | None = field(
        default=None,
        metadata=_about(
            "SharedTier | None",
            "A shared tier (cachekit.redis.RedisTier) that processes share results through, "
            "asked on a local miss. Needs name.",
        ),
    )
    name: str | None = field(
        default=None,
        metadata=_about(
            "str | None",
            "The cache's name in the shared tier: the same in every worker, unique per cache.",
        ),
    )

    # Derived from the options in __post_init__, in seconds where they are durations.
    # ttl when it is a number (None: never, or see ttl_of)
    fixed_ttl: float | None = field(init=False, repr=False, compare=False)
    # ttl when it is a function
    ttl_of: Callable[[Any], Seconds | None] | None = field(init=False, repr=False, compare=False)
    # every value lands with fixed_ttl: no ttl function, no is_negative (see ttl_for)
    ttl_is_constant: bool = field(init=False, repr=False, compare=False)
    # negative_ttl; None: failures are not cached
    failure_seconds: float | None = field(init=False, repr=False, compare=False)
    # stale_ttl; 0.0: none
    stale_seconds: float = field(init=False, repr=False, compare=False)
    # stale_if_error; 0.0: none
    error_grace: float = field(init=False, repr=False, compare=False)
    # refresh_after
    refresh_seconds: float | None = field(init=False, repr=False, compare=False)
    # a value may be recomputed while an entry of it is held: stale_ttl, stale_if_error
    # or refresh_after
    refreshes: bool = field(init=False, repr=False, compare=False)
    # an entry is its value and its expiry: no jitter, and nothing refreshes (make_entry)
    plain_entries: bool = field(init=False, repr=False, compare=False)
    # load_timeout
    timeout_seconds: float | None = field(init=False, repr=False, compare=False)
    # timer, or the default clock
    clock: Callable[[], float] = field(init=False, repr=False, compare=False)
    # random, or a new Random
    rng: Random = field(init=False, repr=False, compare=False)
    # max_loads as a limiter
    limiter: LoadLimiter | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        derive = object.__setattr__  # frozen: the derived fields are set once, here
        ttl = self.ttl
        derive(self, "ttl_of", ttl if callable(ttl) else None)
        derive(self, "fixed_ttl", None if callable(ttl) else check_seconds("ttl", ttl))
        has_ttl = self.ttl_of is not None or self.fixed_ttl is not None
        if self.is_negative is not None and not callable(self.is_negative):
            raise TypeError(
                f"is_negative must be a callable value -> bool, got {self.is_negative!r}"
            )
        derive(self, "ttl_is_constant", self.ttl_of is None and self.is_negative is None)
        derive(self, "stale_seconds", check_seconds("stale_ttl", self.stale_ttl) or 0.0)
        refresh = check_seconds("refresh_after", self.refresh_after)
        if refresh is not None and not (
            refresh > 0 and (self.ttl_of or (self.fixed_ttl or 0) > refresh)
        ):
            raise ValueError(
                f"refresh_after must be > 0 and < ttl ({ttl!r}) seconds, got {self.refresh_after!r}"
            )
        derive(self, "refresh_seconds", refresh)
        grace = check_seconds("stale_if_error", self.stale_if_error) or 0.0
        derive(self, "error_grace", grace)
        for option, value in (("stale_ttl", self.stale_ttl), ("stale_if_error", grace)):
            if value and not has_ttl:
                raise ValueError(
                    f"{option} needs a ttl to count from, got ttl=None, {option}={value!r}"
                )
        check_fraction("ttl_jitter", self.ttl_jitter)
        derive(self, "refreshes", bool(self.stale_seconds or grace or refresh is not None))
        derive(self, "plain_entries", not (self.ttl_jitter or self.refreshes))
        derive(self, "rng", self.random if self.random is not None else Random())
        derive(self, "failure_seconds", check_seconds("negative_ttl", self.negative_ttl) or None)
        check_exception_types("negative_exceptions", self.negative_exceptions)
        if self.timer is not None and not callable(self.timer):
            raise TypeError(f"timer must be a zero-argument callable or None, got {self.timer!r}")
        derive(self, "clock", self.timer if self.timer is not None else default_timer)
        check_bool("cancel_abandoned", self.cancel_abandoned)
        if self.on_event is not None and not callable(self.on_event):
            raise TypeError(
                f"on_event must be a callable taking a CacheEvent, got {self.on_event!r}"
            )
        limits = self.max_loads
        derive(
            self,
            "limiter",
            limits if limits is None or isinstance(limits, LoadLimiter) else LoadLimiter(limits),
        )
        timeout = check_seconds("load_timeout", self.load_timeout)
        if timeout == 0:
            raise ValueError(f"load_timeout must be > 0 seconds or None, got {self.load_timeout!r}")
        derive(self, "timeout_seconds", timeout)
        if self.store is None:
            check_maxsize(self.maxsize)
            if not isinstance(self.policy, str) or self.policy not in _store.POLICIES:
                names = ", ".join(map(repr, _store.POLICIES))
                raise ValueError(f"policy must be one of {names}, got {self.policy!r}")
        if self.shared is not None:
            if not isinstance(self.shared, SharedTier):
                raise TypeError(
                    f"shared must be a shared tier such as RedisTier, got {self.shared!r}"
                )
            if self.name is None:
                raise ValueError("name is required with shared=: it is the cache's shared prefix")
        if self.store is not None:
            if not isinstance(self.store, cachetools.Cache):
                raise TypeError(f"store must be a cachetools.Cache instance, got {self.store!r}")
            if self.maxsize != 1024 or self.policy != "lru":
                raise ValueError("pass either store= or maxsize=/policy=, not both")

    # ------------------------------------------------------------------ derived rules

    def ttl_for(
        self, value: Any, per_call: Seconds | Callable[[Any], Seconds | None] | None = None
    ) -> float | None:
        """How long a landing value stays fresh: negative_ttl for a successful result that
        means "absent" (is_negative, as DNS caches NXDOMAIN); else the ttl of the call that
        led the load, if it gave one (`get_or_compute(..., ttl=)`); else the cache's ttl.
        A ttl that is a function is asked for this value's."""
        if self.is_negative is not None and self.is_negative(value):
            return self.failure_seconds or 0.0
        ttl = self.ttl_of if per_call is None else per_call
        if callable(ttl):
            return check_seconds("ttl(value)", ttl(value))
        if per_call is not None:
            return check_seconds("ttl", per_call)
        return self.fixed_ttl

    def caches_failure(self, error: BaseException) -> bool:
        """The negative-caching rule: whether this failure may be cached at all."""
        return isinstance(error, Exception) and isinstance(error, self.negative_exceptions)

    def make_failure(
        self, key: Hashable, error: BaseException, now: float, ttl: float | None
    ) -> tuple[Failure, float]:
        """The entry for a failure landing now, and its lifetime: cached for `ttl` (None:
        negative_ttl) if the rule admits it, else expired at once (lifetime 0: its callers
        get it, nobody else does)."""
        seconds = self.failure_seconds if ttl is None else ttl
        if not (seconds and self.caches_failure(error)):
            return Failure(key, error, now), 0.0
        return Failure(key, error, now + seconds), seconds

    def make_entry(
        self, key: Hashable, value: Any, now: float, ttl: float | None
    ) -> tuple[Entry, float | None]:
        """The entry for a value landing now with `ttl` seconds to live (None: forever), and
        its nominal lifetime (the expiry queue keeps one FIFO per lifetime)."""
        if ttl is None:
            return Entry(key, value, NEVER), None
        if self.plain_entries:
            return Entry(key, value, now + ttl), ttl
        if self.ttl_jitter:
            ttl *= 1.0 - self.ttl_jitter * self.rng.random()
        fresh_until = now + ttl
        stale, grace, refresh = self.stale_seconds, self.error_grace, self.refresh_seconds
        if not stale and not grace and refresh is None:
            return Entry(key, value, fresh_until), ttl
        attention = fresh_until if refresh is None else now + min(refresh, ttl)
        lifetime = ttl + max(stale, grace)
        entry = RefreshingEntry(
            key, value, attention, fresh_until, fresh_until + stale, now + lifetime
        )
        return entry, lifetime

    def make_store(self) -> cachetools.Cache[Hashable, Any]:
        """The store the options name: the one given (checked empty and unclaimed), or a
        new one of `policy` holding `maxsize` entries."""
        store = self.store
        if store is None:
            return _store.make_store(self.policy, self.maxsize)
        if len(store):
            raise ValueError(f"store must be empty, got one holding {len(store)} items")
        if _store.is_hooked(store):
            raise ValueError(f"store is already used by another AsyncCache: {store!r}")
        _store.size_entries_by_value(store)
        return store


def with_option_reference(doc: str | None) -> str:
    """`doc` with its `{options}` line replaced by the reference of every option: one entry
    an option, with its type, its default and what it means, at that line's indentation
    (Python 3.13 dedents docstrings, earlier versions do not)."""
    doc = doc or ""
    placeholder = re.search(r"^([ \t]*)\{options\}$", doc, re.MULTILINE)
    if placeholder is None:
        return doc
    indent = placeholder.group(1)
    lines = []
    for option in dataclasses.fields(CacheConfig):
        if not option.init:
            continue
        shown, meaning = option.metadata["shown"], option.metadata["meaning"]
        lines.append(f"{indent}{option.name}: {shown} = {option.default!r}")
        lines.extend(_wrap(meaning, indent + "    "))
    return doc[: placeholder.start()] + "\n".join(lines) + "\n" + doc[placeholder.end() :]


def _wrap(text: str, indent: str, width: int = 92) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(indent) + len(line) + 1 + len(word) > width:
            lines.append(indent + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, indent + line]
