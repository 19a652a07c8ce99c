"""CacheEvent: what an `on_event` listener is told, and the queue that tells it.

Events are recorded under the cache's lock, where the state changes, and delivered after
the lock is released, so a listener may call back into the cache. A cache without a
listener records nothing: its paths test one attribute for None.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Hashable
from typing import Literal, NamedTuple

EventKind = Literal[
    "hit",
    "stale_hit",
    "miss",
    "coalesced",
    "refresh",
    "load_success",
    "load_failure",
    "eviction",
    "expiration",
    "invalidation",
]

logger = logging.getLogger("cachekit")


class CacheEvent(NamedTuple):
    """One thing a cache did to one key: an immutable record (a named tuple, which is
    several times cheaper to build than a frozen dataclass: one is built per hit).

    kind: hit (served from a completed entry), stale_hit (a hit on a stale value; a `hit`
    event is sent for it too), miss (a computation started), coalesced (a caller joined one),
    refresh (a background refresh started), load_success / load_failure (a computation
    landed; `duration` is the seconds it ran on the cache's clock, `error` what it raised),
    eviction (dropped by the policy), expiration (dropped because its time ran out),
    invalidation (dropped or forgotten by `invalidate` or `clear`).
    """

    kind: EventKind
    key: Hashable
    duration: float | None = None
    error: BaseException | None = None


class EventQueue:
    """Events recorded but not yet delivered to the listener, oldest first.

    Invariant: `_pending` is appended to under the cache's lock and emptied by `deliver`,
    outside it; `deque.append` and `popleft` are atomic, so threads may deliver at once.
    """

    __slots__ = ("_failed", "_listener", "_pending")

    def __init__(self, listener: Callable[[CacheEvent], object]) -> None:
        self._listener = listener
        self._pending: deque[CacheEvent] = deque()
        self._failed = False

    def record(
        self,
        kind: EventKind,
        key: Hashable,
        duration: float | None = None,
        error: BaseException | None = None,
    ) -> None:
        self._pending.append(CacheEvent(kind, key, duration, error))

    def deliver(self) -> None:
        """Hand every pending event to the listener. A listener that raises is logged
        once (with its traceback) and never breaks the caller; later errors are ignored."""
        pending = self._pending
        while pending:
            try:
                event = pending.popleft()
            except IndexError:  # another thread delivered it
                return
            try:
                self._listener(event)
            except Exception:
                if not self._failed:
                    self._failed = True
                    logger.exception(
                        "cachekit: the on_event listener %r raised; its later errors are "
                        "not logged",
                        self._listener,
                    )
