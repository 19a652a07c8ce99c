"""A flight: one computation in progress for one key, and the callers waiting for it.

The vocabulary is Go's singleflight: a caller *leads* a flight (starts it) or *joins* it;
the flight *lands* once with one outcome, which every waiter receives; *forget* (done by
the coordinator) detaches a flight from its key so that its outcome is never stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from contextvars import ContextVar
from typing import Any, Final, final

from ._expiry import Entry, Failure
from ._limits import Ticket


@final
class Cancelled:
    """The outcome of a flight whose task was cancelled: its waiters must start over."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "CANCELLED"


CANCELLED: Final = Cancelled()

Outcome = Entry | Cancelled

#: The flight whose computation the current task runs, if any: set by the flight's own task
#: (each task has its own context, inherited by the tasks it creates). A call that would wait
#: for a flight that waits, directly or through others, for this one is a deadlock.
COMPUTING: ContextVar[Flight | None] = ContextVar("cachekit_computing", default=None)


@final
class Flight:
    """One computation of one key, run as a task on `loop`.

    Every field is read and written only under the owning cache's lock, but for `task`,
    `awaiting` and the leader's own waiter (below).
    Invariants: `waiters` is None once the flight has landed, and no waiter is added after;
    `live` counts the callers still awaiting (not cancelled), so `live <= len(waiters)`,
    but for a self-answering leader (below);
    `ticket` is set only while the flight waits in a LoadLimiter's queue (then `task` is
    None), and `queued_at` is when it joined that queue. The flights of one bulk load
    (`get_many`) share one task and one `batch` tuple; the first of them, the carrier,
    holds the load slot and the ticket, and is the one whose computation `COMPUTING` names.
    `batch` is set under the lock, in the step that creates the flight. `task` is the one
    field written outside the lock: once, by the thread that starts the computation, right
    after starting it; a reader under the lock that finds None takes the flight as not yet
    started (so a cancellation then misses it, and the computation simply lands). Landing
    sets it back to None, under the lock: the task's context names the flight (COMPUTING),
    so a landed flight that kept its task would be a reference cycle, freed only by the
    garbage collector.

    A self-answering leader (3.12+, no limiter, no cancel_abandoned: AsyncCache's
    `_self_answering`) is counted in `live` but adds no waiter before it starts the
    computation eagerly. If the computation lands in that first step, `answer` holds its
    outcome (it is set whenever a flight lands) and the leader returns it
    with no future at all: most misses of a computation that does not wait. Else the leader
    appends its future right after that step, without the lock: the flight cannot land in
    between, as its task is suspended on this very thread and its loop is running (so
    nobody can orphan it), and an append is atomic.

    `awaiting` is the exception to the lock: it holds the flights, of any cache, that this
    flight's computation waits for right now. A join appends, the join's done callback
    removes; list appends and removals are atomic, and readers take a snapshot. It exists
    only to detect a deadlock (see `cycle_to`).
    """

    __slots__ = (
        "answer",
        "awaiting",
        "batch",
        "key",
        "live",
        "loop",
        "queued_at",
        "refresh",
        "started_at",
        "task",
        "ticket",
        "ttl",
        "waiters",
    )

    def __init__(self, key: Hashable, loop: asyncio.AbstractEventLoop, ttl: Any = None) -> None:
        self.key = key
        self.loop = loop
        self.task: asyncio.Task[Any] | None = None
        self.ticket: Ticket | None = None
        self.queued_at = 0.0
        self.started_at = 0.0
        self.refresh = False  # a background refresh of a still-servable entry
        # The ttl of the call that leads it (get_or_compute(..., ttl=)); None: the cache's.
        self.ttl: Any = ttl
        self.batch: tuple[Flight, ...] | None = None  # the flights of its bulk load
        self.waiters: list[asyncio.Future[Any]] | None = []
        self.live = 0
        self.awaiting: list[Flight] | None = None  # made on the first wait: most never wait
        self.answer: Outcome = CANCELLED  # what it landed with

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

    @property
    def computer(self) -> Flight:
        """The flight whose task computes this one: itself, or its bulk load's carrier."""
        return self if self.batch is None else self.batch[0]


def cycle_to(waiter: Flight, target: Flight) -> list[Flight] | None:
    """The chain of flights by which `target` waits for `waiter`, if it does, else None.

    `waiter`'s computation is about to wait for `target`: if `target` (or a flight it waits
    for, and so on) is `waiter` itself, that wait would never end. Only nested misses (a
    computation that asks a cache) ever walk this; the hit path never does.
    """
    start = waiter.computer
    chain = [target]
    path: dict[int, list[Flight]] = {id(target.computer): chain}
    todo = [target.computer]
    while todo:
        flight = todo.pop()
        if flight is start:
            return path[id(flight)]
        for nxt in tuple(flight.awaiting or ()):
            computer = nxt.computer
            if id(computer) not in path and not nxt.landed:
                path[id(computer)] = [*path[id(flight)], nxt]
                todo.append(computer)
    return None


class Restart(Exception):
    """Raised to a waiter whose flight was cancelled: it must start over (never cached)."""


def resolve(
    waiters: list[asyncio.Future[Any]], home: asyncio.AbstractEventLoop, outcome: Outcome
) -> None:
    """Give `outcome` to every waiter; called on `home`, the loop running the caller.

    A waiter receives the value or the exception itself. Waiters on other loops are
    resolved in their own thread; a waiter whose loop has closed is skipped (nobody is
    left to read it), and never stops the others from being answered.
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
        else:
            try:
                if error is None:
                    waiter.set_result(value)
                else:
                    waiter.set_exception(error)
            except RuntimeError:  # its loop is closed (set_* schedules its callbacks there)
                pass


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
