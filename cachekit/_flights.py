"""A flight: one computation in progress for one key, and the callers waiting for it.

The vocabulary is Go's singleflight: a caller *leads* a flight (starts it) or *joins* it;
the flight *lands* once with one outcome, which every waiter receives; *forget* (done by
the coordinator) detaches a flight from its key so that its outcome is never stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any, Final, final

from ._expiry import Entry
from ._limits import Ticket


@final
class _Cancelled:
    """The outcome of a flight whose task was cancelled: its waiters must start over."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "CANCELLED"


CANCELLED: Final = _Cancelled()

Outcome = Entry | _Cancelled


@final
class Flight:
    """One computation of one key, run as a task on `loop`.

    Every field is read and written only under the owning cache's lock.
    Invariants: `waiters` is None once the flight has landed, and no waiter is added after;
    `live` counts the waiters still awaiting (not cancelled), so `live <= len(waiters)`;
    `ticket` is set only while the flight waits in a LoadLimiter's queue (then `task` is
    None), and `queued_at` is when it joined that queue.
    """

    __slots__ = ("key", "live", "loop", "queued_at", "task", "ticket", "waiters")

    def __init__(self, key: Hashable, loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        self.loop = loop
        self.task: asyncio.Task[Any] | None = None
        self.ticket: Ticket | None = None
        self.queued_at = 0.0
        self.waiters: list[asyncio.Future[Outcome]] | None = []
        self.live = 0

    def add_waiter(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Outcome]:
        """A future on the caller's own loop that will receive the outcome."""
        assert self.waiters is not None, "joined a flight that has landed"
        waiter: asyncio.Future[Outcome] = loop.create_future()
        self.waiters.append(waiter)
        self.live += 1
        return waiter

    def land(self) -> list[asyncio.Future[Outcome]]:
        """Close the flight to new waiters and hand back the ones to resolve."""
        waiters, self.waiters = self.waiters, None
        assert waiters is not None, "a flight lands once"
        return waiters

    @property
    def landed(self) -> bool:
        return self.waiters is None


def resolve(
    waiters: list[asyncio.Future[Outcome]], home: asyncio.AbstractEventLoop, outcome: Outcome
) -> None:
    """Give `outcome` to every waiter; called on the flight's own loop, `home`.

    Waiters on other loops are resolved in their own thread. A waiter whose loop has
    closed is skipped: nobody is left to read it.
    """
    for waiter in waiters:
        loop = waiter.get_loop()
        if loop is home:
            if not waiter.done():
                waiter.set_result(outcome)
        else:
            try:
                loop.call_soon_threadsafe(_settle, waiter, outcome)
            except RuntimeError:  # that loop is closed
                pass


def _settle(waiter: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not waiter.done():
        waiter.set_result(outcome)
