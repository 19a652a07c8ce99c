"""What bounds the commands of a RedisTier lane: a connection slot each, op_timeout for all.

A Redis hit is one short command, and its bounds were a third of what cachekit added to it
(#16): `asyncio.timeout` gives each command a timer of its own, pushed into the loop's heap
and cancelled again, and `asyncio.Semaphore` takes three coroutine frames to hand out a
free slot. Here every command of a lane has the same op_timeout, so their deadlines fall
due in the order the commands started: a FIFO holds them, and one timer, armed for the
oldest, expires the overdue ones. A free slot is taken in one step.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, Final, final

# A deadline that fires over this share of op_timeout late means the loop was too busy to
# read a reply that may have come in time. A command due after such a lapse of the loop, or
# while Redis showed signs of life (see Deadlines.alive), gets op_timeout more, as long as
# it has waited less than EXCUSED seconds, or EXTENSIONS more op_timeouts if that is longer
# (so a dead Redis still costs a busy loop a bounded wait: measured in seconds, as a late
# loop stretches every op_timeout). On a starved loop (one iteration taking op_timeout), a
# command needs several op_timeouts of 0.25 s in the slot queue and on the wire.
LATE: Final = 0.25
EXTENSIONS: Final = 3
EXCUSED: Final = 4.0


@final
class Slots:
    """At most `size` commands at once; the others wait in arrival order, the urgent ones
    (those that finish work in progress: a store, a renewal, a release) first.

    `busy` counts the slots taken, `size` plus those `keep` took; a slot given back goes
    to the first caller still waiting (it stays taken) unless more than `size` are taken,
    else it is freed. Loop-local, like the commands it bounds.
    """

    __slots__ = ("_urgent", "_waiting", "busy", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.busy = 0
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._waiting: deque[asyncio.Future[None]] = deque()

    def try_take(self) -> bool:
        """Take a free slot now, if there is one and nobody waits for it."""
        if self.busy < self.size and not self._waiting and not self._urgent:
            self.busy += 1
            return True
        return False

    async def take(self, urgent: bool = False) -> None:
        """Wait for a slot, handed over by `give_back`. On a loop too busy to serve every
        command in time, work already under way (a load's lock, its store) finishes before
        new work (a lookup) starts: a store that queued behind lookups found its lock lapsed,
        and the load was done again."""
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._waiting).append(handed)
        try:
            await handed
        except asyncio.CancelledError:
            if handed.done() and not handed.cancelled() and handed.exception() is None:
                self.give_back()  # handed over as we were cancelled (not turned away)
            raise

    def turn_away(self, reason: Callable[[], BaseException]) -> None:
        """Every command still waiting gives up now, with its own `reason()`: the circuit
        has opened, and each would find that out only once handed a slot, one loop
        iteration after another (seconds, on a loop that runs late). The slots taken stay
        taken."""
        for waiting in (self._urgent, self._waiting):
            while waiting:
                handed = waiting.popleft()
                if not handed.done():  # (a waiter cancelled meanwhile is skipped)
                    handed.set_exception(reason())

    def keep(self) -> None:
        """Take one more slot, now, even past `size`: for something a command started that
        goes on after it (a connection being opened), until that gives it back. The
        command's own slot, given back next, is then freed rather than handed on."""
        self.busy += 1

    def give_back(self) -> None:
        if self._urgent or self._waiting:
            for waiting in (self._urgent, self._waiting):
                while waiting and self.busy <= self.size:
                    handed = waiting.popleft()
                    if not handed.done():  # (a waiter cancelled meanwhile is skipped)
                        handed.set_result(None)
                        return
        self.busy -= 1


@final
class Running:
    """One command under its deadline: `task` is None once it has finished."""

    __slots__ = ("alive", "due", "expired", "extensions", "heard", "task", "until")

    def __init__(
        self, task: asyncio.Task[Any], due: float, until: float, alive: int, heard: int
    ) -> None:
        self.task: asyncio.Task[Any] | None = task
        self.due = due
        self.until = until  # extended no more from then on
        self.alive = alive  # Deadlines.alive as its current op_timeout began
        self.heard = heard  # Deadlines.alive less its lapses, as it started
        self.extensions = 0  # how many times it was extended
        self.expired = False  # its task was cancelled for it (taken back by the command)


@final
class Deadlines:
    """op_timeout for every command of one lane, with one timer.

    Invariant: `_running` is in order of `due` (commands start in order, and each gets the
    same op_timeout; an extended one is due last of all); finished commands leave it from
    the front, as new ones start or the timer fires. `_timer` is armed for the first
    entry's due while there is one.
    """

    __slots__ = ("_excused", "_lapses", "_loop", "_running", "_seconds", "_timer", "alive")

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        self._loop = loop
        # Redis's signs of life on this lane (replies, connections opened) and the loop's
        # lapses (deadlines run late), counted: a command due while it grew since its
        # op_timeout began was waiting on this process (its queue, a busy or starved loop,
        # connections being opened in a burst), not on Redis.
        self.alive = 0
        self._lapses = 0  # of those, the loop's
        self._seconds = seconds
        self._excused = max(EXCUSED, seconds * EXTENSIONS)  # the longest excused wait
        self._running: deque[Running] = deque()
        self._timer: asyncio.Handle | None = None  # (a TimerHandle, or `_fire`'s call)

    def start(self, task: asyncio.Task[Any]) -> Running:
        """`task` starts a command now: it is cancelled if that command outlasts op_timeout.
        The command sets `running.task` to None when it ends, whatever the outcome."""
        running = self._running
        while running and running[0].task is None:
            running.popleft()
        alive = self.alive
        now = self._loop.time()
        entry = Running(task, now + self._seconds, now + self._excused, alive, alive - self._lapses)
        running.append(entry)
        if self._timer is None:
            self._timer = self._loop.call_at(entry.due, self._fire)
        return entry

    def blames_redis(self, running: Running) -> bool:
        """Whether the command `running`, timed out, shows Redis failing: Redis and the
        loop were both quiet through its last op_timeout, or Redis was through its whole
        wait (a stalled Redis, on a loop that ran late all along)."""
        return running.alive == self.alive or running.heard == self.alive - self._lapses

    def _fire(self) -> None:
        """The timer: judge the commands due once the callbacks already ready have run.
        A reply read in the loop iteration the timer fires in has only scheduled its
        command's task to resume; judged now, the command would be cancelled with its
        reply in hand (a busy process, as in 8 processes on 2 cores, met that often)."""
        self._timer = self._loop.call_soon(self._expire)

    def _expire(self) -> None:
        """Cancel the tasks of the commands past their deadline, but extend one whose
        deadline fires late (see LATE) or that Redis is not to blame for (see `alive`);
        arm the timer for the next one."""
        self._timer = None
        now = self._loop.time()
        late_at = -1.0
        running = self._running
        seconds = self._seconds
        while running:
            first = running[0]
            if first.task is None:
                running.popleft()
                continue
            if first.due > now:
                self._timer = self._loop.call_at(first.due, self._fire)
                return
            running.popleft()
            if now - first.due > seconds * LATE and late_at != now:
                late_at = now
                self.alive += 1  # the loop ran late: a wait across this is not Redis's
                self._lapses += 1
            if first.alive != self.alive and now < first.until:
                first.extensions += 1
                first.due = now + seconds  # due last of all: the order holds
                first.alive = self.alive
                running.append(first)
                continue
            first.expired = True
            first.task.cancel()
