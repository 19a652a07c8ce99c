"""AsyncCache: the one coordinator of completed entries and flights.

Design note: the states of a key.

    absent       no entry, no flight
    in flight    a Flight in `_flights`; callers join it
    fresh        an Entry (success) or a Failure (negative) in `_entries`, expires_at > now
    expired      an entry with expires_at <= now: treated as absent, reclaimed lazily

A key can be fresh *and* in flight only after `set()` raced a flight; `set()` forgets
the flight first, so in practice the states are exclusive. The transitions, each made in
exactly one method:

    absent/expired -> in flight    `_join` (a miss leads a flight, or joins it)
    in flight -> fresh             `_land` (the outcome is stored if cacheable and the
                                    flight is still the current one for its key)
    in flight -> absent            `_land` (not cacheable), `_forget_locked` (invalidate,
                                    clear, set), `_abandon` (cancel_abandoned)
    fresh -> absent                `_drop_locked` (invalidate, expiry reclaim) and
                                    the store's policy (counted in `_evicted`)
    anything -> fresh              `set`

The hit path reads `_entries` without the lock and appends the key to `_touched`; hits
are replayed into the store's order under the lock before any change to the store, so
eviction order is exactly as if every hit had touched the store at once.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import threading
import time
from asyncio import Future, InvalidStateError
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterable, Mapping
from functools import partial
from types import CoroutineType
from typing import Any, Final, Generic, NamedTuple, TypeVar, Unpack, final

from . import _store
from ._cachetools_compat import empty
from ._config import CacheConfig, KeywordOptions, with_option_reference
from ._events import EventQueue
from ._expiry import NEVER, Entry, ExpiryQueue, Failure, RefreshingEntry
from ._flights import (
    CANCELLED,
    COMPUTING,
    Cancelled,
    Flight,
    Outcome,
    Restart,
    cycle_to,
    resolve,
)
from ._options import check_seconds
from ._shared import Landed, SharedBinding, SharedFailure
from ._stats import CacheStats, Counters

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Hits buffered lock-free before the hit path replays them into the store.
DRAIN_AT: Final = 512
#: Expired entries reclaimed at most per operation: bounds the pause, amortised O(1).
_RECLAIM_BUDGET: Final = 32
#: Stale entries the expiry queue may hold beyond twice the live ones before it is compacted.
_COMPACT_SLACK: Final = 1024
#: Seconds between two looks, by a caller waiting on another loop's flight, at that loop:
#: found not running twice in a row, the flight is orphaned (see `_watch_home`).
_ORPHAN_CHECK: Final = 0.05
#: Tasks can start eagerly (run their first step at once, in the caller's step): 3.12+.
_EAGER: Final = sys.version_info >= (3, 12)

log = logging.getLogger("cachekit")


class LoadTimeoutError(TimeoutError):
    """A computation ran past `load_timeout` and was cancelled."""


def unhashable(key: object) -> TypeError:
    """The error for a key that cannot be hashed, naming the offending type."""
    parts = key if type(key) is tuple else (key,)
    for part in parts:
        try:
            hash(part)
        except TypeError:
            return TypeError(
                f"cache key is unhashable: an argument of type {type(part).__name__!r} "
                f"({part!r:.60}) cannot be part of a key"
            )
    return TypeError(f"cache key of type {type(key).__name__!r} is unhashable")


@final
class _FlightTask(asyncio.Task[None]):
    """A flight's task where it cannot start eagerly (Python 3.11).

    `_run` lands the flight however it ends, but a task cancelled before its first step
    never enters `_run`. Rather than a done callback on every task (a loop handle per miss),
    `cancel()` adds it, once, to the task being cancelled: `cache._after_task(flight)`.
    (Two plain fields rather than a partial: nothing is built per miss.)
    """

    __slots__ = ("cache", "flight")
    cache: AsyncCache[Any, Any]
    flight: Flight | None

    def cancel(self, msg: Any | None = None) -> bool:
        flight = getattr(self, "flight", None)
        if flight is not None:
            self.flight = None
            self.add_done_callback(partial(self.cache._after_task, flight))
        return super().cancel(msg)


@final
class _Raised:
    """A key's failure in a bulk result, raised once every key has settled."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


_RESTART: Final = object()  # a key whose flight was cancelled under it, in a bulk result


#: What `AsyncCache._join` hands a caller that missed: see there.
Pending = Future[Any] | Entry | Coroutine[Any, Any, Any]


class HitPath(NamedTuple):
    """What a decorated function's wrapper binds of its cache, once, at decoration: the hit
    path reads `entries` without the lock, appends to `touched`, and calls `drain` once it
    holds `drain_at` keys; a miss goes to `join`, then `retry` once if the flight it joined
    was cancelled. `timer` is the injected clock, or None for the default one, which the
    wrapper reads itself (one call fewer, and it still follows freezegun)."""

    entries: dict[Hashable, Entry]
    touched: list[Hashable]
    drain_at: int
    drain: Callable[[], None]
    join: Callable[[Any, Callable[[], Awaitable[Any]]], Pending]
    retry: Callable[[Any, Callable[[], Awaitable[Any]]], Awaitable[Any]]
    timer: Callable[[], float] | None


class AsyncCache(Generic[K, V]):
    """Completed results and in-flight computations, side by side, under one key.

    A caller of `get_or_compute` gets a fresh result, joins the one computation already
    under way, or starts it. Bad options raise at construction: ValueError for a bad value,
    TypeError for a wrong type, naming the option and the value.

    Options (all keyword-only but maxsize; a duration is seconds, as a number or a
    datetime.timedelta):

    {options}
    """

    def __init__(self, maxsize: int | None = 1024, **options: Unpack[KeywordOptions]) -> None:
        config = self._config = CacheConfig(maxsize=maxsize, **options)
        # What the hot paths read, copied out of the configuration once.
        # `_timer`: the clock (`config.clock`). A miss reads it twice, as the generated hit
        # path does: `time.monotonic()` itself where no timer was injected (looked up each
        # time, so freezegun and mock.patch move it): 0.5k instructions on 3.12, against
        # 1.1k through `_clock.default_timer`.
        self._injected_timer = config.timer
        self._timer: Callable[[], float] = config.clock
        self._cancel_abandoned = config.cancel_abandoned
        self._limiter = config.limiter  # a shared limiter bounds every cache that holds it
        self._load_timeout = config.timeout_seconds
        # A new flight's leader takes the answer from the flight when its computation lands
        # in its eager first step (3.12+): nothing else may act on its waiting meanwhile.
        self._self_answering = _EAGER and self._limiter is None and not self._cancel_abandoned
        # When every value lands with the same ttl, the miss path need not ask for each.
        self._ttl_is_constant = config.ttl_is_constant
        self._constant_ttl = config.fixed_ttl
        # A value's entry is Entry(key, value, now + ttl) (see CacheConfig.make_entry).
        self._plain_entries = config.plain_entries
        # Events recorded under the lock, delivered after it; None: no listener, no cost.
        self._events = None if config.on_event is None else EventQueue(config.on_event)
        # Hits buffered before a drain; a listener hears of each hit as it happens.
        self._drain_at = DRAIN_AT if config.on_event is None else 1
        store = config.make_store()
        self._store = store
        # `store[key] = entry` through its bound method: the same call, without the dunder
        # dispatch (0.4k instructions a miss on 3.12)
        self._store_item = store.__setitem__
        self._replay_hits = _store.hit_replayer(store)
        _store.hook_evictions(store, self._evicted)

        # Guards every structure below except where a comment says the hit path reads it.
        self._lock = threading.Lock()
        # key -> Entry: the store's own items dict. Changed only by the store, under
        # `_lock`; the hit path reads it without the lock.
        self._entries: dict[Hashable, Entry] = _store.items_of(store)
        # Keys served by hits since the last drain, in hit order. The hit path appends
        # without the lock; `_drain_locked` removes exactly the items it replays.
        self._touched: list[Hashable] = []
        # key -> its flight in progress. Never evicted, never expired: a flight leaves
        # only by landing, being forgotten, or being abandoned, and always by identity.
        self._flights: dict[Hashable, Flight] = {}
        # Entries with a finite expiry, in expiry order; may hold stale entries, at most
        # twice the live ones plus _COMPACT_SLACK (see `_insert_locked`).
        self._expiry = ExpiryQueue()

        self._counts = Counters()  # what stats() reports; changed under `_lock`
        self._loads_running = 0  # flights of this cache whose computation runs now
        self._loads_queued = 0  # flights of this cache waiting for a LoadLimiter slot

        # The shared tier (cachekit.redis): asked on an L1 miss, told of invalidations.
        self._shared: SharedBinding | None = None
        if config.shared is not None:
            assert config.name is not None  # CacheConfig requires it
            self._shared = config.shared.attach(config.name, self)
        # A new flight's leader looks its key up in the shared tier in its own task, and
        # starts the flight's task only for what is left (see `_lead_shared`).
        self._looks_up_first = (
            self._shared is not None and self._limiter is None and not self._cancel_abandoned
        )

    # ------------------------------------------------------------------ hit path

    async def get_or_compute(
        self,
        key: K,
        compute: Callable[[], Awaitable[V]],
        *,
        ttl: float | Callable[[V], float | None] | None = None,
    ) -> V:
        """The fresh value for `key`; else join its computation; else start `compute()`.

        `compute` is a zero-argument callable returning an awaitable. A cached failure is
        re-raised. `ttl` (seconds, or `ttl(value)`) replaces the cache's ttl for the value
        this call's computation lands; None: the cache's. A call that joins a computation
        already running gets what that computation lands with.
        """
        if ttl is not None and not callable(ttl):
            check_seconds("ttl", ttl, allow_none=False)  # a bad ttl fails hits too
        try:
            entry = self._entries.get(key)
        except TypeError:
            raise unhashable(key) from None
        if entry is not None and entry.expires_at > self._timer():
            touched = self._touched
            touched.append(key)
            if len(touched) >= self._drain_at:
                self._drain()
            value: V = entry.value
            return value
        if not callable(compute):
            raise TypeError(f"compute must be a zero-argument callable, got {compute!r}")
        try:
            pending = self._join(key, compute, ttl)
            if isinstance(pending, Entry):  # known at once: its value, or a Failure raises
                value = pending.value
                return value
            return await pending
        except Restart:
            return await self._retry(key, compute, ttl)

    async def get_many(
        self,
        keys: Iterable[K],
        compute_many: Callable[[list[K]], Awaitable[Mapping[K, V]]],
    ) -> dict[K, V]:
        """The values of many keys at once, loading the missing ones in one call.

        Fresh keys are hits and keys in flight are joined; every other key is loaded by one
        call `compute_many(missing_keys)`, which returns a mapping from key to value and
        whose flights every concurrent caller of any of those keys joins (DataLoader). A
        key missing from that mapping fails with KeyError (negatively cached if
        `negative_ttl` says so). Returns a dict in the order of `keys` (duplicates once);
        if any key failed, raises the first failure in that order, once all have settled.
        """
        if not callable(compute_many):
            raise TypeError(
                f"compute_many must be a callable taking a list of keys, got {compute_many!r}"
            )
        wanted: list[K] = []
        for key in keys:
            try:
                hash(key)
            except TypeError:
                raise unhashable(key) from None
            wanted.append(key)
        wanted = list(dict.fromkeys(wanted))
        if self._shared is not None:  # ask the shared tier first (TypeError: no stable key)
            compute_many = self._shared.bind_many(wanted, compute_many)
        outcomes = await self._settle_many(wanted, compute_many)
        restarted = [key for key in wanted if outcomes[key] is _RESTART]
        if restarted:  # their bulk load was cancelled: one more try, as get_or_compute does
            again = await self._settle_many(restarted, compute_many)
            for key in restarted:
                if again[key] is _RESTART:
                    raise RuntimeError(f"the computation of key {key!r} was cancelled twice")
                outcomes[key] = again[key]
        for key in wanted:
            if isinstance(outcomes[key], _Raised):
                raise outcomes[key].error
        return outcomes

    async def _settle_many(
        self, keys: list[K], compute_many: Callable[[list[K]], Awaitable[Mapping[K, V]]]
    ) -> dict[K, Any]:
        """Each key's outcome: its value, `_Raised(error)`, or `_RESTART`."""
        loop = asyncio.get_running_loop()
        computing = COMPUTING.get()  # set when this call comes from a computation
        outcomes: dict[K, Any] = {}
        waiting: dict[K, asyncio.Future[Any]] = {}
        joined: list[tuple[Flight, asyncio.Future[Any]]] = []
        leads: list[Flight] = []
        refreshes: list[Flight] = []
        with self._lock:
            if computing is not None:  # before any claim: a refusal leaves nothing behind
                for key in keys:
                    self._refuse_deadlock_locked(computing, key)
            for key in keys:
                served, launch, flight = self._claim_locked(key, loop, None)
                if served is not None:
                    outcomes[key] = served
                else:
                    assert flight is not None
                    waiter = waiting[key] = flight.add_waiter(loop)
                    joined.append((flight, waiter))
                if launch is not None:
                    (refreshes if launch.refresh else leads).append(launch)
            for group in (leads, refreshes):  # under the lock, before anyone else reads it
                batch = tuple(group)
                for flight in batch:
                    flight.batch = batch
        for flight, waiter in joined:
            self._watch(flight, waiter, loop, computing)
        if self._events is not None:
            self._drain()
        for group in (leads, refreshes):
            if group:
                loader: Callable[..., Awaitable[Any]] = compute_many
                if group is refreshes and self._shared is not None:
                    loader = self._shared.refreshing(compute_many)  # one per key, fleet-wide
                self._launch(group[0], loader)  # one call, one slot: the carrier's
        if waiting:
            try:
                await asyncio.wait(waiting.values())
            except asyncio.CancelledError:
                for waiter in waiting.values():
                    waiter.cancel()
                raise
        for key in keys:
            waiter_or_entry = waiting.get(key)
            try:
                if waiter_or_entry is None:
                    outcomes[key] = outcomes[key].value
                else:
                    outcomes[key] = waiter_or_entry.result()
            except Restart:
                outcomes[key] = _RESTART
            except Exception as error:
                outcomes[key] = _Raised(error)
        return outcomes

    def get(self, key: K, default: V | None = None) -> V | None:
        """A fresh, successful, completed value for `key`, else `default`. Never waits.

        A value found counts as a hit and touches the eviction order; not finding one starts
        nothing, so it is not counted as a miss.
        """
        entry = self._entries.get(key)
        if type(entry) is not Failure and entry is not None and entry.expires_at > self._timer():
            touched = self._touched
            touched.append(key)
            if len(touched) >= self._drain_at:
                self._drain()
            value: V = entry.value
            return value
        return default

    def __contains__(self, key: object) -> bool:
        """True when a fresh completed entry (a value or a cached failure) exists."""
        entry = self._entries.get(key)
        return entry is not None and entry.expires_at > self._timer()

    def __len__(self) -> int:
        """Completed entries held, expired ones included until they are reclaimed."""
        return len(self._entries)

    # ------------------------------------------------------------------ writes

    def set(self, key: K, value: V, ttl: float | None = None) -> None:
        """Store `value` for `key` now; `ttl=None` means the cache's ttl.

        A computation of `key` in flight is forgotten: its callers still get its result,
        but it will not overwrite this value.
        """
        ttl = self._config.ttl_for(value) if ttl is None else check_seconds("ttl", ttl)
        if self._shared is not None:  # written through; other workers' L1 drop the key
            self._shared.stored(key, value, ttl)  # (TypeError first if it cannot be shared)
        with self._lock:
            now = self._timer()
            self._forget_locked(key)
            entry, duration = self._config.make_entry(key, value, now, ttl)
            if entry.expires_at > now:
                self._insert_locked(entry, duration, now)
            else:
                self._drop_locked(key)
        if self._events is not None:
            self._events.deliver()

    def invalidate(self, key: K) -> bool:
        """Drop `key`'s entry and forget its flight; True if there was either.

        A forgotten flight still answers the callers already waiting for it, but its
        result is not stored: the next caller starts afresh.
        """
        dropped = self._invalidate_here(key)
        if self._shared is not None:
            self._shared.invalidated(key)  # from the shared store and every worker's L1
        return dropped

    def _invalidate_here(self, key: Hashable) -> bool:
        """invalidate() in this process only: also what a remote invalidation does here."""
        with self._lock:
            forgot = self._forget_locked(key)
            dropped = self._drop_locked(key)
            if self._events is not None and (forgot or dropped):
                self._events.record("invalidation", key)
        if self._events is not None:
            self._events.deliver()
        return forgot or dropped

    def clear(self) -> None:
        """Drop every entry and forget every flight (their waiters are still answered)."""
        self._clear_here()
        if self._shared is not None:
            self._shared.cleared()  # the cache's keys in the shared store and every L1

    def _clear_here(self) -> None:
        """clear() in this process only: also what a remote clear does here."""
        with self._lock:
            self._drain_locked()
            if self._events is not None:
                for key in {**self._entries, **self._flights}:
                    self._events.record("invalidation", key)
            for key in list(self._flights):
                self._forget_locked(key)
            empty(self._store)
            self._expiry.clear()
        if self._events is not None:
            self._events.deliver()

    def reset_stats(self) -> None:
        """Zero the counters of `stats()`: hits, misses, evictions, load times and the rest.

        The gauges (`loads_running`, `loads_queued`, `currsize`) keep telling what is, and
        the shared tier's counters are its own. A decorated function's `cache_clear()`
        clears the entries and resets the counters, as `functools.lru_cache` does.
        """
        with self._lock:
            self._drain_locked()
            self._counts = Counters()

    def stats(self) -> CacheStats:
        """A snapshot of the counters."""
        with self._lock:
            maxsize = self._store.maxsize
            return self._counts.snapshot(
                buffered_hits=len(self._touched),
                loads_running=self._loads_running,
                loads_queued=self._loads_queued,
                currsize=len(self._entries),
                maxsize=None if maxsize == float("inf") else maxsize,
                shared=self._shared.counters() if self._shared is not None else {},
            )

    def loading(self) -> dict[Hashable, str]:
        """A snapshot of the keys whose computation is in flight: key -> "running" or "queued"."""
        with self._lock:
            return {
                key: "queued" if (flight.batch or (flight,))[0].ticket is not None else "running"
                for key, flight in self._flights.items()
            }

    def __repr__(self) -> str:
        return (
            f"<AsyncCache {type(self._store).__name__} entries={len(self._entries)} "
            f"flights={len(self._flights)} ttl={self._config.ttl!r}>"
        )

    # ------------------------------------------------------------------ miss path

    def _join(
        self, key: K, compute: Callable[[], Awaitable[V]], ttl: Any = None
    ) -> Future[V] | Entry | Coroutine[Any, Any, V]:
        """The miss path: a future of the caller's own that will hold the key's outcome,
        or, when the outcome is known at once, its Entry (served, or landed in the eager
        first step of the computation the caller leads): its `value` is the answer, or
        raises the cached failure. With a shared tier, a caller that leads a new flight
        gets a coroutine instead, which looks the key up there first (`_lead_shared`).

        It leads a new flight or joins the current one, and returns at once; the caller
        awaits the future, which receives the value or the exception itself, so nothing is
        left to unwrap. Cancelling the caller cancels only its own future. If the flight is
        cancelled (its loop shut down, or the computation cancelled itself), the future
        raises `Restart`, and the caller tries once more through `_retry`. `ttl` is the
        caller's own (`get_or_compute(..., ttl=)`): the flight it leads, if any, carries it.
        `compute` is callable (checked by get_or_compute; a wrapper's is its own lambda).
        """
        if self._shared is not None:  # ask the shared tier first (TypeError: no stable key)
            compute = self._shared.bind(key, compute, ttl)
        loop = asyncio.get_running_loop()
        computing = COMPUTING.get()  # set when this call comes from a computation
        # acquire/release, not `with`: `with` costs a lock 2.5k instructions, these 0.9k
        # (a miss takes the lock twice; its `__exit__` builds an argument tuple)
        lock = self._lock
        lock.acquire()
        try:
            if computing is not None:
                self._refuse_deadlock_locked(computing, key)
            answers_itself = False
            if key in self._entries or key in self._flights:
                served, launch, flight = self._claim_locked(key, loop, ttl)
            else:  # a plain miss: it leads a new flight
                served = None
                launch = flight = self._lead_locked(key, loop, ttl)
                if computing is None and (self._self_answering or self._looks_up_first):
                    # Its computation may land in its eager first step: then the caller
                    # takes the answer from the flight, and needs no future (see Flight).
                    # With a shared tier, it looks the key up there first (_lead_shared).
                    answers_itself = True
                    flight.live = 1
                    flight = None
            if flight is not None:  # Flight.add_waiter, inlined: one call fewer a miss
                # On the running loop, `loop`: named, the argument costs 0.85k instructions
                waiter: asyncio.Future[Any] = asyncio.Future()
                flight.waiters.append(waiter)  # type: ignore[union-attr]  # not landed
                flight.live += 1
        finally:
            lock.release()
        if self._events is not None:
            self._drain()
        if flight is not None and (
            computing is not None or self._cancel_abandoned or flight.loop is not loop
        ):  # before the launch: an eager start may run compute() at once
            self._watch(flight, waiter, loop, computing)
        if launch is not None:
            if answers_itself and self._looks_up_first:
                return self._lead_shared(launch, compute, loop)
            if self._shared is not None and launch.refresh:  # one refresh for the fleet
                compute = self._shared.refreshing(compute)
            if self._limiter is None:
                self._spawn(launch, compute)
            else:
                self._launch(launch, compute)
            if answers_itself:
                waiters = launch.waiters
                if waiters is None:  # landed in its first step
                    answer = launch.answer
                    if type(answer) is Cancelled:
                        raise Restart
                    if type(answer) is Failure:  # as a waiter gets it: the error itself
                        raise answer.error
                    return answer
                waiter = asyncio.Future()  # on the running loop, `loop` (as above)
                waiters.append(waiter)  # without the lock: see Flight.answer
                return waiter
        if served is not None:
            return served
        return waiter

    async def _lead_shared(
        self, flight: Flight, load: Callable[[], Awaitable[Any]], loop: asyncio.AbstractEventLoop
    ) -> Any:
        """A new flight's leader, with a shared tier: it looks the key up there in its own
        task, so that an entry found there costs no task and no loop hop, and starts the
        flight's task only for what is left (a load here, or the wait for another
        worker's). The lookup is the tier's code, never the user's: the computation still
        runs in a task of its own. Cancelled during the lookup, the leader hands the whole
        `load` to the flight's task, so that the callers who joined meanwhile are answered;
        with nobody left waiting, the flight lands cancelled (no task is started).
        Events are delivered by `_land`, and `_join` delivered the miss's."""
        assert self._shared is not None
        try:
            found = await self._shared.look_up(load, loop)
        except GeneratorExit:  # its loop is gone: no task can start; joiners start over
            self._land(flight, None, asyncio.CancelledError(), None)
            raise
        except asyncio.CancelledError:
            with self._lock:
                waiters = flight.waiters
                waited = waiters is not None and any(not w.done() for w in waiters)
            if waited:  # those who joined meanwhile are answered by the flight's task
                self._spawn(flight, load)
            else:  # nobody to answer (a loop shutting down cancels every task at once)
                self._land(flight, None, asyncio.CancelledError(), None)
            raise
        except BaseException as error:  # the tier's own bug, or KeyboardInterrupt
            self._land(flight, None, error, None)
            raise
        if isinstance(found, Landed):
            self._land(flight, found.value, None, found.ttl)
        elif isinstance(found, SharedFailure):
            self._land(flight, None, found.error, found.ttl)
        else:
            self._spawn(flight, found)
        with self._lock:
            waiters = flight.waiters
            if waiters is not None:  # not landed (in the eager first step, say): wait
                waiter: asyncio.Future[Any] = asyncio.Future(loop=loop)
                waiters.append(waiter)
        if waiters is not None:
            return await waiter
        answer = flight.answer
        if type(answer) is Cancelled:
            raise Restart
        if type(answer) is Failure:  # as a waiter gets it: the error itself
            raise answer.error
        return answer.value

    def _watch(
        self,
        flight: Flight,
        waiter: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
        computing: Flight | None,
    ) -> None:
        """What a waiting caller arranges beyond its future, each only where it applies:
        cancel_abandoned's count, the edge that deadlock detection follows, and a look at
        the home loop of a flight on another loop (that loop may close under it)."""
        if self._cancel_abandoned:
            waiter.add_done_callback(partial(self._waiter_done, flight))
        if computing is not None:
            computer = computing.computer
            awaiting = computer.awaiting
            if awaiting is None:
                awaiting = computer.awaiting = []
            awaiting.append(flight)
            waiter.add_done_callback(partial(_stop_awaiting, awaiting, flight))
        if flight.loop is not loop:
            loop.call_later(_ORPHAN_CHECK, self._watch_home, flight, waiter, loop, False)

    def _watch_home(
        self,
        flight: Flight,
        waiter: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
        seen_idle: bool,
    ) -> None:
        """A caller waits on `loop` for a flight of another loop: if that loop is closed, or
        stopped at two looks in a row, the flight is orphaned and the caller starts over."""
        if waiter.done() or flight.landed:
            return
        idle = not flight.loop.is_running()
        if idle and seen_idle:
            with self._lock:
                if not flight.landed:
                    self._orphan_locked(flight, loop)
            return
        loop.call_later(_ORPHAN_CHECK, self._watch_home, flight, waiter, loop, idle)

    def _refuse_deadlock_locked(self, computing: Flight, key: Hashable) -> None:
        """Raise if the computation of `computing` would wait for its own result: `key` is in
        flight, and that flight waits, directly or through others, for `computing`."""
        flight = self._flights.get(key)
        if flight is None or computing.landed:
            return
        chain = cycle_to(computing, flight)
        if chain is not None:
            keys = " -> ".join(repr(f.key) for f in (computing, *chain))
            raise RuntimeError(
                f"deadlock: the computation of key {computing.key!r} waits for key {key!r}, "
                f"which waits for it ({keys}); a computation must not await its own key"
            )

    def _claim_locked(
        self, key: Hashable, loop: asyncio.AbstractEventLoop, ttl: Any
    ) -> tuple[Entry | None, Flight | None, Flight | None]:
        """What a caller that missed on the hit path gets: `(served, launch, flight)`.

        `served` is an entry to answer from at once: fresh (it landed since the caller
        looked), past its refresh point, stale, or quiet after a failed reload. `launch` is
        a new flight the caller must launch once the lock is released: the one it leads
        (carrying the caller's `ttl`), or a background refresh. `flight` is the flight to
        wait for, None when served.
        """
        entry = self._entries.get(key)
        if entry is not None:
            now = self._timer()
            if entry.reclaim_at <= now:
                self._drop_locked(key)
                self._counts.expirations += 1
                if self._events is not None:
                    self._events.record("expiration", key)
            elif entry.stale_until > now:
                self._touched.append(key)
                refresh = None
                if entry.expires_at <= now:
                    refresh = self._refresh_locked(entry, loop, now)
                return entry, refresh, None
            elif type(entry) is RefreshingEntry and entry.quiet_until > now:
                # stale-if-error: its reload failed and the failure is negatively cached
                self._touched.append(key)
                self._counts.stale_hits += 1
                self._counts.stale_if_error_hits += 1
                if self._events is not None:
                    self._events.record("stale_hit", key)
                return entry, None, None
            # else: past serving, kept as the fallback of the reload led or joined below
        flight = self._flights.get(key)
        if flight is not None and flight.loop is not loop and not flight.loop.is_running():
            self._orphan_locked(flight, loop)  # its loop is closed or stopped
            flight = None
        if flight is None:
            flight = self._lead_locked(key, loop, ttl)
            return None, flight, flight
        self._counts.coalesced += 1
        if self._events is not None:
            self._events.record("coalesced", key)
        return None, None, flight

    def _lead_locked(self, key: Hashable, loop: asyncio.AbstractEventLoop, ttl: Any) -> Flight:
        """A miss: the new flight of `key`, which the caller launches once the lock is
        released (carrying the caller's `ttl`), counted as running unless it must queue."""
        flight = self._flights[key] = Flight(key, loop, ttl)
        if self._limiter is None:  # it starts as soon as the lock is released
            self._loads_running += 1
            timer = self._injected_timer  # the clock, read as the hit path does: see `_timer`
            flight.started_at = time.monotonic() if timer is None else timer()
        self._counts.misses += 1
        if self._events is not None:
            self._events.record("miss", key)
        return flight

    async def _retry(self, key: K, compute: Callable[[], Awaitable[V]], ttl: Any = None) -> V:
        """The second and last attempt after a flight was cancelled under its waiters."""
        try:
            pending = self._join(key, compute, ttl)
            if isinstance(pending, Entry):  # known at once: its value, or a Failure raises
                value: V = pending.value
                return value
            return await pending
        except Restart:
            raise RuntimeError(f"the computation of key {key!r} was cancelled twice") from None

    def _waiter_done(self, flight: Flight, waiter: asyncio.Future[Any]) -> None:
        if waiter.cancelled():
            self._abandon(flight)

    def _refresh_locked(
        self, entry: Entry, loop: asyncio.AbstractEventLoop, now: float
    ) -> Flight | None:
        """A hit past the entry's refresh point: count it, and lead a background refresh
        unless one is already in flight. The refresh flight has no waiters of its own."""
        assert isinstance(entry, RefreshingEntry)
        key = entry.key
        if now >= entry.fresh_until:
            self._counts.stale_hits += 1
            if self._events is not None:
                self._events.record("stale_hit", key)
        if key in self._flights or entry.quiet_until > now:
            return None
        flight = self._flights[key] = Flight(key, loop)
        flight.refresh = True
        if self._limiter is None:  # it starts as soon as the lock is released
            self._loads_running += 1
            flight.started_at = now
        self._counts.refreshes += 1
        if self._events is not None:
            self._events.record("refresh", key)
        return flight

    def _launch(self, flight: Flight, compute: Callable[..., Awaitable[Any]]) -> None:
        """Start a new flight's computation now, or queue it for a LoadLimiter slot.

        Called outside the lock: an eager task factory may run compute() at once. Without
        a limiter, the flight was counted as running when it was claimed.
        """
        limiter = self._limiter
        if limiter is None:
            self._spawn(flight, compute)
            return
        start = partial(self._start, flight, compute)
        with self._lock:
            flight.queued_at = self._timer()
            ticket = limiter.acquire(start, flight.loop)
            if ticket is not None:
                flight.ticket = ticket
                self._loads_queued += 1
                return
        self._start(flight, compute)

    def _start(self, flight: Flight, compute: Callable[..., Awaitable[Any]]) -> None:
        """Run a flight that holds a LoadLimiter slot (now, or handed over from the queue)."""
        with self._lock:
            if flight.ticket is not None:  # it leaves the queue
                flight.ticket = None
                self._loads_queued -= 1
                self._counts.queue_wait += self._timer() - flight.queued_at
            abandoned = flight.landed
            if not abandoned:
                now = self._timer()
                for member in flight.batch or (flight,):
                    self._loads_running += 1
                    member.started_at = now
        if abandoned:  # every waiter left while it was queued: it never runs
            assert self._limiter is not None
            self._limiter.release()
            return
        self._spawn(flight, compute)

    def _spawn(self, flight: Flight, compute: Callable[..., Awaitable[Any]]) -> None:
        """The flight's computation, as a task on its loop. Eager where the interpreter has
        it (3.12+) and the loop has no task factory of its own: the task runs at once, in
        the caller's step, up to its first suspension, so a computation that completes
        without waiting lands before its caller awaits, and needs no callback at all."""
        loop = flight.loop
        batch = flight.batch
        coro = self._run(flight, compute) if batch is None else self._run_batch(batch, compute)
        task: asyncio.Task[None]
        if _EAGER and loop.get_task_factory() is None:
            # (mypy on 3.11 knows no eager_start; _EAGER is the version check)
            task = asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
            if task.done():  # landed in its first step
                try:
                    task.exception()  # retrieved: KeyboardInterrupt or SystemExit, if any
                except asyncio.CancelledError:
                    self._after_task(flight, task)
                return
            # Its first step has run, so from here on _run itself lands whatever ends it
            # (a cancellation included): no done callback is needed.
            flight.task = task
            return
        if loop.get_task_factory() is None:
            task = _FlightTask(coro, loop=loop)
            task.cache, task.flight = self, flight
        else:  # the loop's own tasks: a done callback lands what _run cannot
            task = loop.create_task(coro)
            task.add_done_callback(partial(self._after_task, flight))
        flight.task = task

    async def _run(self, flight: Flight, compute: Callable[[], Awaitable[Any]]) -> None:
        """The flight's task: compute, then land the outcome in the same step.

        Landing here rather than in a done callback answers the waiters one event-loop
        iteration sooner, which is most of the cost of a miss whose computation is quick.
        """
        COMPUTING.set(flight)  # in this task's own context: what its computation asks is checked
        fresh_for: float | None
        try:
            awaitable = compute()
            if type(awaitable) is not CoroutineType and not inspect.isawaitable(awaitable):
                raise TypeError(f"compute() must return an awaitable, got {awaitable!r}")
            if self._load_timeout is None:
                value = await awaitable
            else:
                value = await self._bounded(awaitable, f"the computation of key {flight.key!r}")
            # Asked here, so that a ttl(value) or is_negative that raises fails the flight.
            if type(value) is Landed:  # from the shared tier, with the ttl it keeps there
                value, fresh_for = value.value, value.ttl
            elif self._ttl_is_constant and flight.ttl is None:
                fresh_for = self._constant_ttl
            else:
                fresh_for = self._config.ttl_for(value, flight.ttl)
        except SharedFailure as shared:  # a failure cached by another worker, or a Redis error
            error, fresh_for = shared.error, shared.ttl
        except GeneratorExit as exc:
            self._land_closed(flight, exc)
            return  # a coroutine being closed must not go on; one that raised it is done
        except BaseException as exc:  # every outcome lands; see below for what re-raises
            error, fresh_for = exc, None
        else:
            self._land(flight, value, None, fresh_for)
            return
        self._land(flight, None, error, fresh_for)
        if not isinstance(error, Exception):
            raise error  # cancellation, KeyboardInterrupt and SystemExit keep their meaning

    def _land_closed(self, flight: Flight, exc: GeneratorExit) -> None:
        """Land a flight whose task met GeneratorExit, and never let it escape to the loop.

        Either the task is being destroyed unfinished (its loop was closed under it: no step
        of it is running now), and its waiters start over as for any orphaned flight; or the
        computation itself raised GeneratorExit, which its callers get as a RuntimeError,
        never cached, instead of an exception that escapes `except Exception`."""
        try:
            running = asyncio.current_task()
        except RuntimeError:  # no loop runs here: collected by the garbage collector
            running = None
        if running is None or (flight.task is not None and running is not flight.task):
            self._land(flight, None, asyncio.CancelledError(), None)
            return
        error = RuntimeError(f"the computation of key {flight.key!r} raised GeneratorExit")
        error.__cause__ = exc
        self._land(flight, None, error, 0.0)

    async def _bounded(self, awaitable: Awaitable[Any], what: str) -> Any:
        """Await a computation for at most `load_timeout` seconds, else LoadTimeoutError.
        A TimeoutError raised by the computation itself passes through unchanged."""
        seconds = self._load_timeout
        try:
            async with asyncio.timeout(seconds) as scope:
                return await awaitable
        except TimeoutError:
            if not scope.expired():
                raise
            raise LoadTimeoutError(f"{what} exceeded load_timeout={seconds}s") from None

    async def _run_batch(
        self, batch: tuple[Flight, ...], compute_many: Callable[[list[Any]], Awaitable[Any]]
    ) -> None:
        """A bulk load's task: one call of `compute_many(keys)`, then every flight lands
        with its own key's value, or a KeyError if the mapping returned has none."""
        COMPUTING.set(batch[0])  # the carrier computes for every flight of the batch
        keys = [flight.key for flight in batch]
        found: Mapping[Any, Any] = {}
        error: BaseException | None = None
        try:
            awaitable = compute_many(keys)
            if not inspect.isawaitable(awaitable):
                raise TypeError(f"compute_many() must return an awaitable, got {awaitable!r}")
            if self._load_timeout is None:
                found = await awaitable
            else:
                found = await self._bounded(awaitable, f"the bulk load of keys {keys!r:.200}")
            if not isinstance(found, Mapping):
                raise TypeError(f"compute_many() must return a Mapping, got {found!r:.200}")
        except GeneratorExit as exc:
            for flight in batch:
                self._land_closed(flight, exc)
            return
        except BaseException as exc:  # every flight lands; see below for what re-raises
            error = exc
        for flight in batch:
            value: Any = None
            own_error = error
            fresh_for: float | None = None
            if error is None:
                try:
                    value = found[flight.key]
                    if type(value) is Landed:  # from the shared tier, with its ttl there
                        value, fresh_for = value.value, value.ttl
                    elif type(value) is SharedFailure:
                        value, own_error, fresh_for = None, value.error, value.ttl
                    else:
                        fresh_for = self._config.ttl_for(value)
                except KeyError:
                    own_error = KeyError(f"compute_many() returned no value for {flight.key!r}")
                except Exception as exc:  # a ttl(value) or is_negative that raised
                    own_error = exc
            self._land(flight, value, own_error, fresh_for)
        if error is not None and not isinstance(error, Exception):
            raise error

    def _after_task(self, flight: Flight, task: asyncio.Task[Any]) -> None:
        """Done callback: land a task cancelled before its first step; retrieve the rest."""
        if task.cancelled():
            for member in flight.batch or (flight,):
                if not member.landed:
                    self._land(member, None, asyncio.CancelledError(), None)
        else:
            task.exception()  # KeyboardInterrupt or SystemExit, already given to the waiters

    def _land(
        self, flight: Flight, value: Any, error: BaseException | None, fresh_for: float | None
    ) -> None:
        """Build the flight's outcome, store it if due, and answer its waiters.

        Whatever the store or the policy raises while the outcome is stored reaches every
        waiter instead, and the flight's bookkeeping (its place, its slot, the gauges) is
        released all the same. A flight already landed (orphaned meanwhile) lands no more.
        """
        lock = self._lock
        lock.acquire()
        try:
            waiters = flight.waiters
            if waiters is None:  # landed already
                return
            try:
                answer = self._outcome_locked(flight, value, error, fresh_for)
            except Exception as failure:  # from the store or the policy: see the docstring
                answer = Failure(flight.key, failure, self._timer())
            flight.answer = answer  # for a leader that took no future (see Flight)
            flight.waiters = None  # Flight.land(), inlined: the flight is closed
            flight.task = None  # else flight -> task -> its context -> COMPUTING -> flight
            self._loads_running -= 1
        finally:
            lock.release()
        if self._limiter is not None and (flight.batch is None or flight.batch[0] is flight):
            self._limiter.release()
        if self._events is not None:
            self._events.deliver()
        if not waiters:  # its leader takes the answer from the flight, or nobody waits
            return
        if len(waiters) == 1 and type(answer) is Entry:  # one caller, a value: most misses
            waiter = waiters[0]
            if waiter.get_loop() is flight.loop:
                try:
                    waiter.set_result(answer.value)
                except InvalidStateError:  # its caller was cancelled
                    pass
                except RuntimeError:  # its loop is closed: nobody is left to read it
                    pass
                return
        resolve(waiters, flight.loop, answer)

    def _outcome_locked(
        self, flight: Flight, value: Any, error: BaseException | None, fresh_for: float | None
    ) -> Outcome:
        """The landing flight's outcome, counted, and stored if it is cacheable and the
        flight is still the current one for its key; returns what its waiters get."""
        key = flight.key
        timer = self._injected_timer  # the clock, read as the hit path does: see `_timer`
        now = time.monotonic() if timer is None else timer()
        counts = self._counts
        if flight.batch is None or flight.batch[0] is flight:  # a bulk load counts once
            counts.load_count += 1
            counts.load_time += now - flight.started_at
        if self._events is not None:
            self._events.record(
                "load_success" if error is None else "load_failure",
                key,
                now - flight.started_at,
                error,
            )
        current = self._flights.get(key) is flight  # else forgotten: it stores nothing
        if current:
            del self._flights[key]
        if error is None:  # a value: most landings, so the shortest way
            if fresh_for is None:
                entry, ttl = Entry(key, value, NEVER), None
            elif self._plain_entries:  # make_entry's first case, without the call
                entry, ttl = Entry(key, value, now + fresh_for), fresh_for
            else:
                entry, ttl = self._config.make_entry(key, value, now, fresh_for)
            if current and (
                entry.expires_at > now
                # (stale already, as read from a shared tier: kept while it can be served)
                or (fresh_for is not None and fresh_for < 0 and entry.reclaim_at > now)
            ):
                self._insert_locked(entry, ttl, now)
            return entry
        if flight.refresh:
            counts.refresh_failures += 1
        if isinstance(error, asyncio.CancelledError):
            return CANCELLED
        counts.load_failures += 1
        counts.load_timeouts += isinstance(error, LoadTimeoutError)
        failure, ttl = self._config.make_failure(key, error, now, fresh_for)
        if not current:
            return failure
        fallback = self._entries.get(key)
        if (
            isinstance(error, Exception)
            and type(fallback) is RefreshingEntry
            and fallback.reclaim_at > now
        ):
            # stale-if-error: a failed reload never replaces a value still in its grace;
            # its callers get that value, and a failure that is negatively cached keeps
            # the upstream from being asked again meanwhile.
            if failure.expires_at > now:
                fallback.quiet_until = min(failure.expires_at, fallback.reclaim_at)
            counts.stale_if_error_hits += flight.live
            return fallback
        if failure.expires_at > now:
            self._insert_locked(failure, ttl, now)
        return failure

    def _orphan_locked(self, flight: Flight, loop: asyncio.AbstractEventLoop) -> None:
        """Give up a flight whose loop is closed or stopped: it would never land.

        Every flight of its load leaves its key and lands now as cancelled, so that its
        waiters start over; the load's slot is freed, or its place in the load queue. If
        that loop runs again, what the old computation lands is dropped. `loop` is the
        running loop, from which the waiters are answered.
        """
        carrier = flight.computer
        queued = carrier.ticket is not None  # then it never held a slot, nor ran
        holds_slot = not queued and not carrier.landed and carrier.task is not None
        members = carrier.batch or (carrier,)
        for member in members:
            if self._flights.get(member.key) is member:
                del self._flights[member.key]
        if queued:
            resolve(self._withdraw_locked(carrier), loop, CANCELLED)
        for member in members:
            if member.landed:
                continue
            self._loads_running -= not queued
            resolve(member.land(), loop, CANCELLED)
        if holds_slot and self._limiter is not None:
            self._limiter.release()

    def _abandon(self, flight: Flight) -> None:
        """A waiter was cancelled. With cancel_abandoned, the last one cancels the flight."""
        with self._lock:
            if flight.landed:
                return
            flight.live -= 1
            if flight.live or not self._cancel_abandoned or flight.batch is not None:
                return  # a bulk load runs on: its other keys may still be wanted
            if self._flights.get(flight.key) is flight:
                del self._flights[flight.key]
            self._cancel_locked(flight)

    def _cancel_locked(self, flight: Flight) -> None:
        """Stop a flight nobody waits for: out of the load queue, or its task cancelled
        (on its own loop's thread; Task.cancel only schedules, so the lock is no hazard).
        A bulk load is never cancelled: its other keys may still be wanted."""
        if flight.batch is not None:
            return
        if flight.ticket is not None:
            self._withdraw_locked(flight)
            return
        task = flight.task
        if task is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is flight.loop:
            task.cancel()
        else:
            try:
                flight.loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # its loop is closed: the task will never run again
                pass

    # ------------------------------------------------------------------ bookkeeping
    # Everything below runs under `_lock`.

    def _insert_locked(self, entry: Entry, ttl: float | None, now: float) -> None:
        """Store a completed entry; every write also reclaims a few expired ones."""
        key = entry.key
        if self._expiry.next_at <= now:
            self._reclaim_locked(now)
        if self._touched:
            self._drain_locked()
        try:
            self._store_item(key, entry)
        except ValueError:  # larger than the whole store: keep nothing for this key
            self._drop_locked(key)
            return
        except Exception:
            if not self._forget_unfindable_locked():
                raise  # the store's own failure, for the flight's waiters
            self._store[key] = entry  # once more, without the broken keys
        if entry.expires_at != NEVER:
            assert ttl is not None
            expiry = self._expiry
            expiry.push(entry, ttl)
            if expiry.size > 2 * len(self._entries) + _COMPACT_SLACK:
                expiry.compact(self._entries.get)

    def _forget_unfindable_locked(self) -> bool:
        """After the store failed: drop every key that its own dict can no longer find (its
        hash or equality changed after it was stored, so the policy trips over it when it
        evicts). The store is emptied without looking a key up and the others are put back.
        False if there was no such key: the failure was the store's own."""
        lost = _store.unfindable_keys(self._entries)
        if not lost:
            return False
        kept = list(dict.items(self._entries))  # without lookups; LRU order is lost
        lost_ids = {id(key) for key in lost}
        empty(self._store)
        for key, entry in kept:
            if id(key) not in lost_ids:
                self._store[key] = entry
        for key in lost:
            log.warning(
                "cachekit: dropped a cached key whose hash or equality changed after it was "
                "stored (keys must not change): %r",
                key,
            )
        return True

    def _drop_locked(self, key: Hashable) -> bool:
        """Remove `key`'s entry, if any, from the store (and so from the hit path's view)."""
        if key not in self._entries:
            return False
        self._drain_locked()
        del self._store[key]
        return True

    def _forget_locked(self, key: Hashable) -> bool:
        """Detach `key`'s flight: it still answers its waiters but will store nothing.

        A background refresh that nobody waits for has no one left to answer: it is
        cancelled."""
        flight = self._flights.pop(key, None)
        if flight is None:
            return False
        if flight.refresh and not flight.live:
            self._cancel_locked(flight)
        return True

    def _withdraw_locked(self, flight: Flight) -> list[asyncio.Future[Any]]:
        """Take a queued flight out of the LoadLimiter's queue for good: it never runs.
        Returns its waiters, for the caller to answer (or none left, if it was abandoned)."""
        assert self._limiter is not None and flight.ticket is not None
        self._limiter.withdraw(flight.ticket)
        flight.ticket = None
        self._loads_queued -= 1
        return flight.land()

    def _evicted(self, key: Hashable, entry: Entry) -> None:
        """Called by the store, inside `_insert_locked`, for each entry it drops for room."""
        self._counts.evictions += 1
        if self._events is not None:
            self._events.record("eviction", key)

    def _reclaim_locked(self, now: float) -> None:
        for entry in self._expiry.pop_expired(now, _RECLAIM_BUDGET):
            key = entry.key
            if self._entries.get(key) is entry:
                self._drop_locked(key)
                self._counts.expirations += 1
                if self._events is not None:
                    self._events.record("expiration", key)

    def _drain(self) -> None:
        lock = self._lock
        lock.acquire()
        try:
            self._drain_locked()
        finally:
            lock.release()
        if self._events is not None:
            self._events.deliver()

    def _drain_locked(self) -> None:
        """Replay buffered hits into the store's order and count them."""
        touched = self._touched
        count = len(touched)
        if not count:
            return
        batch = touched[:count]
        del touched[:count]  # hits appended meanwhile by other threads stay buffered
        self._counts.hits += count
        if self._replay_hits is not None:
            self._replay_hits(batch)
        events = self._events
        if events is not None:
            for key in batch:
                events.record("hit", key)

    # ------------------------------------------------------------------ for a shared tier
    # What `cachekit._shared.SharedCache` names: all a shared tier may ask of this cache.

    def holds_key(self, key: Hashable) -> bool:
        """`key` has an entry or a flight in this process."""
        return key in self._entries or key in self._flights

    def invalidate_here(self, key: Hashable) -> bool:
        """invalidate() in this process only: what another worker's invalidation does."""
        return self._invalidate_here(key)

    def clear_here(self) -> None:
        """clear() in this process only: what another worker's clear does."""
        self._clear_here()

    def ttl_for(self, value: Any, per_call: Any = None) -> float | None:
        """How long a loaded `value` stays fresh (None: no expiry; 0: not kept), given the
        ttl of the call that led the load (None: the cache's)."""
        return self._config.ttl_for(value, per_call)

    def failure_ttl(self, error: BaseException) -> float | None:
        """How long a load's `error` is cached (negative_ttl), or None: not cached."""
        seconds = self._config.failure_seconds
        return seconds if seconds and self._config.caches_failure(error) else None

    def refreshes(self) -> bool:
        """A value may be recomputed while an entry of it is held (stale_ttl,
        stale_if_error or refresh_after)."""
        return self._config.refreshes

    def stale_windows(self) -> tuple[float, float]:
        """(stale_ttl, stale_if_error) in seconds, 0.0 for none: how long past its fresh
        time a value is served at once, and how long it is the fallback of a failed load."""
        return self._config.stale_seconds, self._config.error_grace

    # ------------------------------------------------------------------ for the decorator

    def _hit_path(self) -> HitPath:
        """What a generated wrapper binds (see HitPath)."""
        return HitPath(
            self._entries,
            self._touched,
            self._drain_at,
            self._drain,
            self._join,
            self._retry,
            self._injected_timer,
        )


def _stop_awaiting(awaiting: list[Flight], flight: Flight, waiter: asyncio.Future[Any]) -> None:
    """A waiter's done callback: its computation no longer waits for `flight`."""
    try:
        awaiting.remove(flight)
    except ValueError:
        pass


AsyncCache.__doc__ = with_option_reference(AsyncCache.__doc__)
