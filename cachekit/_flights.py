"""A flight: one computation in progress for one key, and the callers waiting for it.

The vocabulary is Go's singleflight: a caller *leads* a flight (starts it) or *joins* it;
the flight *lands* once with one outcome, which every waiter receives; *forget* (done by
the coordinator) detaches a flight from its key so that its outcome is never stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any, Final, final

from ._expiry import Entry, Failure
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
    None), and `queued_at` is when it joined that queue. The flights of one bulk load
    (`get_many`) share one task and one `batch` tuple; the first of them, the carrier,
    holds the load slot and the ticket.
    """

    __slots__ = (
        "batch",
        "key",
        "live",
        "loop",
        "queued_at",
        "refresh",
        "started_at",
        "task",
        "ticket",
        "waiters",
    )

    def __init__(self, key: Hashable, loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        self.loop = loop
        self.task: asyncio.Task[Any] | None = None
        self.ticket: Ticket | None = None
        self.queued_at = 0.0
        self.started_at = 0.0
        self.refresh = False  # a background refresh of a still-servable entry
        self.batch: tuple[Flight, ...] | None = None  # the flights of its bulk load
        self.waiters: list[asyncio.Future[Any]] | None = []
        self.live = 0

    def add_waiter(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
        """A future on the caller's own loop that will receive the value or the exception."""
        assert self.waiters is not None, "joined a flight that has landed"
        # The Future class directly, not loop.create_future(): one Python call fewer per
        # caller in a stampede. (Loops with their own future class, such as uvloop, accept it.)
        waiter: asyncio.Future[Any] = asyncio.Future(loop=loop)
        self.waiters.append(waiter)
        self.live += 1
        return waiter

    def land(self) -> list[asyncio.Future[Any]]:
        """Close the flight to new waiters and hand back the ones to resolve."""
        waiters, self.waiters = self.waiters, None
        assert waiters is not None, "a flight lands once"
        return waiters

    @property
    def landed(self) -> bool:
        return self.waiters is None


class Restart(Exception):
    """Raised to a waiter whose flight was cancelled: it must start over (never cached)."""


def resolve(
    waiters: list[asyncio.Future[Any]], home: asyncio.AbstractEventLoop, outcome: Outcome
) -> None:
    """Give `outcome` to every waiter; called on the flight's own loop, `home`.

    A waiter receives the value or the exception itself. Waiters on other loops are
    resolved in their own thread; a waiter whose loop has closed is skipped: nobody is
    left to read it.
    """
    if outcome is CANCELLED:
        error: BaseException | None = Restart()
    elif type(outcome) is Failure:
        error = outcome.error
    else:
        assert isinstance(outcome, Entry)
        error, value = None, outcome.value
    for waiter in waiters:  # the stampede's hot loop: one branch per waiter
        if waiter.done():  # its caller was cancelled
            continue
        if waiter.get_loop() is not home:
            try:
                waiter.get_loop().call_soon_threadsafe(_settle, waiter, outcome)
            except RuntimeError:  # that loop is closed
                pass
        elif error is None:
            waiter.set_result(value)
        else:
            waiter.set_exception(error)


def _settle(waiter: asyncio.Future[Any], outcome: Outcome) -> None:
    if waiter.done():  # its caller was cancelled
        return
    if outcome is CANCELLED:
        waiter.set_exception(Restart())
    elif type(outcome) is Failure:
        waiter.set_exception(outcome.error)
    else:
        assert isinstance(outcome, Entry)
        waiter.set_result(outcome.value)
