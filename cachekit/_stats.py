"""CacheStats: a frozen snapshot of a cache's counters."""

from dataclasses import dataclass


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
