"""CacheStats: a frozen snapshot of a cache's counters; Counters: the counts behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import final


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What a cache has done since it was created (or since its counters were last reset).

    hits: calls served from a completed entry, a cached failure included.
    misses: calls that started a computation.
    coalesced: calls that joined a computation already in flight.
    evictions: entries dropped by the policy to make room.
    expirations: entries dropped because their time ran out.
    load_failures: computations that raised (cached or not).
    load_timeouts: computations cancelled for running past `load_timeout`.
    loads_running: computations running at snapshot time.
    loads_queued: computations waiting for a `max_loads` slot at snapshot time.
    queue_wait_seconds: total time computations spent waiting for a slot.
    stale_hits: hits served from a stale entry (included in hits).
    refreshes: background refreshes started (refresh_after, stale_ttl).
    refresh_failures: background refreshes that raised.
    stale_if_error_hits: calls given the old value because reloading it failed
        (stale_if_error); the ones served without waiting are also hits and stale_hits.
    load_count: computations that landed; load_time_total: the seconds they took.
    currsize: completed entries held at snapshot time.
    maxsize: the store's capacity (None when unbounded).

    With a shared tier (shared=), of the misses above (L1 misses):
    shared_hits: answered from the shared store (a value or another worker's cached failure).
    shared_misses: loaded here, holding the fleet-wide lock for the key.
    shared_errors: shared-store commands that failed or timed out, calls that skipped the
    store while it cooled down, and payloads rejected (bad signature, corrupt, unknown format).
    remote_waits: misses that waited for another worker's load.
    lock_takeovers: loads started here after another worker's lease ran out.
    """

    hits: int = 0
    misses: int = 0
    coalesced: int = 0
    evictions: int = 0
    expirations: int = 0
    load_failures: int = 0
    load_timeouts: int = 0
    loads_running: int = 0
    loads_queued: int = 0
    queue_wait_seconds: float = 0.0
    stale_hits: int = 0
    refreshes: int = 0
    refresh_failures: int = 0
    stale_if_error_hits: int = 0
    load_count: int = 0
    load_time_total: float = 0.0
    currsize: int = 0
    maxsize: float | None = None
    shared_hits: int = 0
    shared_misses: int = 0
    shared_errors: int = 0
    remote_waits: int = 0
    lock_takeovers: int = 0

    @property
    def hit_ratio(self) -> float:
        """Hits over all calls that asked for a value (hits, misses and coalesced); 0.0 if none."""
        total = self.hits + self.misses + self.coalesced
        return self.hits / total if total else 0.0


@final
class Counters:
    """The running counts of one cache, behind its CacheStats.

    Changed only under the owning cache's lock (hits arrive there in batches, from the hit
    path's buffer). Gauges (flights running or queued, entries held) are the cache's state,
    not counts: `snapshot` takes them as they are.
    """

    __slots__ = (
        "coalesced",
        "evictions",
        "expirations",
        "hits",
        "load_count",
        "load_failures",
        "load_time",
        "load_timeouts",
        "misses",
        "queue_wait",
        "refresh_failures",
        "refreshes",
        "stale_hits",
        "stale_if_error_hits",
    )

    def __init__(self) -> None:
        self.hits = 0  # hits drained from the hit path's buffer
        self.misses = 0
        self.coalesced = 0
        self.evictions = 0
        self.expirations = 0
        self.load_failures = 0
        self.load_timeouts = 0
        self.stale_hits = 0  # hits served past fresh_until (included in hits)
        self.refreshes = 0  # background refreshes started
        self.refresh_failures = 0
        self.stale_if_error_hits = 0  # calls given the old value because a reload failed
        self.load_count = 0  # computations that landed
        self.load_time = 0.0  # seconds they took, on the cache's clock
        self.queue_wait = 0.0  # seconds flights spent queued for a slot, on the cache's clock

    def snapshot(
        self,
        *,
        buffered_hits: int,
        loads_running: int,
        loads_queued: int,
        currsize: int,
        maxsize: float | None,
        shared: dict[str, int],
    ) -> CacheStats:
        """The frozen CacheStats of these counts and the gauges given."""
        return CacheStats(
            hits=self.hits + buffered_hits,
            misses=self.misses,
            coalesced=self.coalesced,
            evictions=self.evictions,
            expirations=self.expirations,
            load_failures=self.load_failures,
            load_timeouts=self.load_timeouts,
            loads_running=loads_running,
            loads_queued=loads_queued,
            queue_wait_seconds=self.queue_wait,
            stale_hits=self.stale_hits,
            refreshes=self.refreshes,
            refresh_failures=self.refresh_failures,
            stale_if_error_hits=self.stale_if_error_hits,
            load_count=self.load_count,
            load_time_total=self.load_time,
            currsize=currsize,
            maxsize=maxsize,
            **shared,
        )
