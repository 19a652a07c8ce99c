"""Completed entries and the queue that reclaims them once they expire.

An entry is an outcome (a value, or an exception admitted for negative caching) and the
moment it needs attention: `entry.expires_at > now` decides, alone, that a hit is served
without any work (a RefreshingEntry can still be served past it; see its docstring).
"""

from __future__ import annotations

import copy
import heapq
import math
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from itertools import compress
from operator import attrgetter, is_
from types import TracebackType
from typing import Any, Final, final

NEVER: Final = math.inf


class Entry:
    """A successful outcome. `value` is a plain slot: reading it is the whole hit."""

    __slots__ = ("expires_at", "key", "value")

    def __init__(self, key: Hashable, value: Any, expires_at: float) -> None:
        self.key = key
        self.value = value
        self.expires_at = expires_at

    @property
    def stale_until(self) -> float:
        """Until when a caller may be served this entry without waiting for anything."""
        return self.expires_at

    @property
    def reclaim_at(self) -> float:
        """When the entry may be dropped: nothing can be served from it after that."""
        return self.expires_at


# For a plain Entry (and a Failure) both are `expires_at` itself, read through that slot's
# own descriptor under the other names: no Python call on the miss path and in the expiry
# queue. The properties above are what type checkers and readers see; RefreshingEntry's
# own slots of those names take precedence for it.
setattr(Entry, "stale_until", Entry.__dict__["expires_at"])  # noqa: B010
setattr(Entry, "reclaim_at", Entry.__dict__["expires_at"])  # noqa: B010


@final
class RefreshingEntry(Entry):
    """A value that stays useful past the moment it needs attention.

    `expires_at` is when the hit path stops serving it blindly: the refresh_after point,
    or the end of the ttl. Until `fresh_until` it is fresh (a hit past `expires_at` starts a
    refresh ahead of expiry); after that, until `stale_until`, it is stale: served at once
    while one background refresh runs (stale-while-revalidate). Until `reclaim_at` it is
    kept as the fallback of a recomputation that fails (stale-if-error); `quiet_until` is
    set when such a failure is negatively cached: until then the entry is served without
    asking the upstream again. Only `quiet_until` changes, under the owning cache's lock.
    """

    __slots__ = ("fresh_until", "quiet_until", "reclaim_at", "stale_until")

    def __init__(
        self,
        key: Hashable,
        value: Any,
        expires_at: float,
        fresh_until: float,
        stale_until: float,
        reclaim_at: float,
    ) -> None:
        super().__init__(key, value, expires_at)
        self.fresh_until = fresh_until
        self.stale_until = stale_until  # type: ignore[misc]
        self.reclaim_at = reclaim_at  # type: ignore[misc]
        self.quiet_until = 0.0


@final
class Failure(Entry):
    """A failed outcome. Reading `value` raises a copy of the exception.

    Each reading gets its own copy, with the traceback, notes, cause and context the
    exception had when the computation failed: a caller that adds a note, or re-raises it
    (which adds frames), changes only its copy, so nothing accumulates across hits and no
    caller sees another's notes. An exception that cannot be rebuilt from its `args` is
    raised itself, its notes and traceback reset first.
    """

    __slots__ = ("error", "notes", "traceback")

    def __init__(self, key: Hashable, error: BaseException, expires_at: float) -> None:
        self.key = key
        self.error = error
        self.traceback: TracebackType | None = error.__traceback__
        self.notes: tuple[str, ...] = tuple(getattr(error, "__notes__", ()))
        self.expires_at = expires_at

    @property
    def value(self) -> Any:
        error = self.error
        try:
            raised = copy.copy(error)
        except Exception:  # its constructor does not take its own args back
            raised = error
        if self.notes:
            raised.__notes__ = list(self.notes)
        elif "__notes__" in vars(raised):
            del raised.__notes__
        if raised is not error:
            raised.__cause__ = error.__cause__
            raised.__context__ = error.__context__
            raised.__suppress_context__ = error.__suppress_context__
        raise raised.with_traceback(self.traceback)


class ExpiryQueue:
    """Entries in the order they can be reclaimed, so reclaiming is O(1) per entry and never a scan.

    Entries written with the same time-to-live expire in the order they were written, so
    each distinct ttl gets a FIFO deque (Caffeine's write-order queue). Past a handful of
    distinct ttls the rest go to a heap.

    Invariant: every deque is sorted by `reclaim_at`; no entry held is reclaimable before
    `next_at` (the soonest head, or a moment before it), so a writer that finds
    `next_at > now` knows there is nothing to reclaim without looking. The queue may still
    hold entries that were replaced, invalidated or evicted (it never searches), so the
    caller must check that the entry it pops is still the one stored under its key, and
    must `compact` it when those outnumber the live ones (else a busy cache with a long ttl
    would keep every evicted value alive until its ttl ran out). `size` counts every entry
    held.
    """

    _MAX_FIFOS: Final = 8

    def __init__(self) -> None:
        # ttl -> entries written with that ttl, oldest first.
        self._fifos: dict[float, deque[Entry]] = {}
        # (expires_at, tie-breaker, entry) for entries whose ttl got no deque.
        self._heap: list[tuple[float, int, Entry]] = []
        self._pushed = 0
        self.size = 0
        self.next_at = NEVER

    def __len__(self) -> int:
        return self.size  # `size` itself, where a call would cost (the miss path)

    def push(self, entry: Entry, ttl: float) -> None:
        self.size += 1
        reclaim_at = entry.reclaim_at
        if reclaim_at < self.next_at:
            self.next_at = reclaim_at
        fifo = self._fifos.get(ttl)
        if fifo is None and len(self._fifos) < self._MAX_FIFOS:
            fifo = self._fifos[ttl] = deque()
        if fifo is not None and (not fifo or fifo[-1].reclaim_at <= reclaim_at):
            fifo.append(entry)
        else:
            self._pushed += 1
            heapq.heappush(self._heap, (reclaim_at, self._pushed, entry))

    def pop_expired(self, now: float, budget: int) -> list[Entry]:
        """Up to `budget` entries reclaimable by `now`, soonest first per source."""
        expired: list[Entry] = []
        for fifo in self._fifos.values():
            while fifo and fifo[0].reclaim_at <= now and len(expired) < budget:
                expired.append(fifo.popleft())
        heap = self._heap
        while heap and heap[0][0] <= now and len(expired) < budget:
            expired.append(heapq.heappop(heap)[2])
        self.size -= len(expired)
        self._find_next()
        return expired

    def compact(self, current: Callable[[Hashable], Entry | None]) -> None:
        """Keep only the entries still stored, `current(key) is entry` (the store's own
        lookup): O(n) without a Python call per entry, and run only once the stale entries
        outnumber the live ones, which makes it amortised O(1) per push."""
        for ttl, fifo in self._fifos.items():
            self._fifos[ttl] = deque(_stored(fifo, current))  # filtering keeps the order
        self._heap = [item for item in self._heap if current(item[2].key) is item[2]]
        heapq.heapify(self._heap)
        self.size = sum(map(len, self._fifos.values())) + len(self._heap)
        self._find_next()

    def clear(self) -> None:
        self._fifos.clear()
        self._heap.clear()
        self.size = 0
        self.next_at = NEVER

    def _find_next(self) -> None:
        """`next_at` after entries left: the soonest head of any source."""
        soonest = self._heap[0][0] if self._heap else NEVER
        for fifo in self._fifos.values():
            if fifo and fifo[0].reclaim_at < soonest:
                soonest = fifo[0].reclaim_at
        self.next_at = soonest


_KEY: Final = attrgetter("key")


def _stored(
    entries: Iterable[Entry], current: Callable[[Hashable], Entry | None]
) -> Iterable[Entry]:
    """The entries that `current` still finds under their keys, in order (all in C)."""
    entries = tuple(entries)
    return compress(entries, map(is_, map(current, map(_KEY, entries)), entries))
