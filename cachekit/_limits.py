"""LoadLimiter: at most N computations at once; the rest wait their turn in FIFO order.

Never on the hit path: only a flight that is about to start a computation asks for a slot.
One limiter may be shared by several caches (and their event loops and threads), so it has
its own lock and hands slots over by calling a start function on the flight's own loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import final


@final
class Ticket:
    """A place in the queue: the start function to call once a slot is free."""

    __slots__ = ("loop", "start", "withdrawn")

    def __init__(self, start: Callable[[], None], loop: asyncio.AbstractEventLoop) -> None:
        self.start = start
        self.loop = loop
        self.withdrawn = False


@final
class LoadLimiter:
    """Bounds the computations running at once across every cache that shares it."""

    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError(f"max_loads must be an int > 0, a LoadLimiter or None, got {limit!r}")
        if limit <= 0:
            raise ValueError(f"max_loads must be > 0 or None, got {limit!r}")
        self.limit = limit
        self._lock = threading.Lock()
        # Invariants: 0 <= _running <= limit; _queue holds tickets only while every slot is
        # taken (withdrawn tickets may linger until they reach the front and are skipped).
        self._running = 0
        self._queue: deque[Ticket] = deque()

    def __repr__(self) -> str:
        return f"LoadLimiter({self.limit}, running={self._running}, queued={len(self._queue)})"

    @property
    def running(self) -> int:
        return self._running

    def acquire(self, start: Callable[[], None], loop: asyncio.AbstractEventLoop) -> Ticket | None:
        """Take a slot now (None: the caller starts at once) or queue `start` (its Ticket)."""
        with self._lock:
            if self._running < self.limit:
                self._running += 1
                return None
            ticket = Ticket(start, loop)
            self._queue.append(ticket)
            return ticket

    def withdraw(self, ticket: Ticket) -> None:
        """The queued computation is no longer wanted: it will be skipped, holding no slot."""
        ticket.withdrawn = True

    def release(self) -> None:
        """A computation finished: its slot passes to the oldest ticket still wanted."""
        while True:
            with self._lock:
                ticket = None
                while self._queue:
                    candidate = self._queue.popleft()
                    if not candidate.withdrawn:
                        ticket = candidate
                        break
                if ticket is None:
                    self._running -= 1
                    return
            try:
                ticket.loop.call_soon_threadsafe(ticket.start)
                return
            except RuntimeError:  # its loop is closed: nobody is left to run it
                continue
