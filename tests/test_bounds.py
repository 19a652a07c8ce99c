"""The bounds of a RedisTier lane's commands (cachekit._bounds), without Redis."""

from __future__ import annotations

import asyncio
import time

import pytest

from cachekit._bounds import EXCUSED, EXTENSIONS, Deadlines, Running, Slots

from .conftest import settle


async def forever() -> None:
    await asyncio.Event().wait()


async def test_a_slot_given_back_goes_to_the_first_waiter_still_waiting() -> None:
    slots = Slots(2)
    assert slots.try_take() and slots.try_take()
    assert not slots.try_take()
    order: list[str] = []

    async def wait(name: str) -> None:
        await slots.take()
        order.append(name)

    first = asyncio.create_task(wait("first"))
    gone = asyncio.create_task(wait("gone"))
    last = asyncio.create_task(wait("last"))
    await settle()
    gone.cancel()
    await settle()
    assert not slots.try_take()  # nobody jumps the queue, even with a waiter gone
    slots.give_back()
    slots.give_back()
    await settle()
    assert order == ["first", "last"] and slots.busy == 2
    assert first.done() and last.done() and gone.cancelled()
    slots.give_back()
    slots.give_back()
    assert slots.busy == 0 and slots.try_take()


async def test_urgent_waiters_are_handed_slots_before_the_others_in_arrival_order() -> None:
    # On a loop too busy for every command, the stores and renewals of loads under way go
    # before new lookups (a store that queued behind lookups found its lock lapsed).
    slots = Slots(1)
    assert slots.try_take()
    order: list[str] = []

    async def wait(name: str, urgent: bool) -> None:
        await slots.take(urgent)
        order.append(name)
        slots.give_back()

    waiters = [
        asyncio.create_task(wait(name, urgent))
        for name, urgent in [("lookup 1", False), ("store 1", True), ("lookup 2", False)]
    ]
    await settle()
    waiters.append(asyncio.create_task(wait("renewal", True)))
    await settle()
    assert not slots.try_take()  # an urgent waiter is waiting too
    slots.give_back()
    await settle()
    assert order == ["store 1", "renewal", "lookup 1", "lookup 2"]
    assert all(w.done() for w in waiters) and slots.busy == 0


async def test_a_waiter_cancelled_as_its_slot_is_handed_over_passes_it_on() -> None:
    slots = Slots(1)
    assert slots.try_take()
    handed = asyncio.create_task(slots.take())
    after = asyncio.create_task(slots.take())
    await settle()
    slots.give_back()  # to `handed`, whose step has not run yet
    handed.cancel()
    await settle()
    assert handed.cancelled() and after.done() and not after.cancelled()
    assert slots.busy == 1  # held by `after`, not lost


class Turned(Exception):
    pass


async def test_turning_away_fails_every_waiter_at_once_and_keeps_the_slots_taken() -> None:
    # The circuit opened: the commands queued for a slot go without Redis now, rather than
    # one loop iteration after another as slots are handed on (seconds on a late loop).
    slots = Slots(1)
    assert slots.try_take()
    waiters = [asyncio.create_task(slots.take(urgent)) for urgent in (False, True, False)]
    gone = asyncio.create_task(slots.take())
    await settle()
    gone.cancel()
    await settle()
    reasons: list[Turned] = []
    slots.turn_away(lambda: reasons.append(Turned()) or reasons[-1])
    assert len(reasons) == 3  # one for each waiter still waiting, its own
    await asyncio.sleep(0)  # one step: each waiter raises in its very next step
    for waiter in waiters:
        assert waiter.done() and isinstance(waiter.exception(), Turned)
    assert gone.cancelled()
    assert slots.busy == 1  # the holder's slot stays taken, until given back
    slots.give_back()
    assert slots.busy == 0 and slots.try_take()


async def test_a_waiter_cancelled_as_it_is_turned_away_gives_back_no_slot() -> None:
    slots = Slots(1)
    assert slots.try_take()
    turned = asyncio.create_task(slots.take())
    await settle()
    slots.turn_away(Turned)
    turned.cancel()  # before its step: the cancellation, not the reason, reaches it
    await settle()
    assert turned.cancelled()
    assert slots.busy == 1  # the holder's, not given back for a slot never handed over


async def test_a_command_past_its_deadline_has_its_task_cancelled_and_a_finished_one_never() -> (
    None
):
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop, 0.05)
    quick = asyncio.create_task(forever())
    slow = asyncio.create_task(forever())
    await asyncio.sleep(0)
    finished = deadlines.start(quick)
    stuck = deadlines.start(slow)
    finished.task = None  # its command ended in time
    quick.cancel()  # (the test's own cleanup of the task)
    async with asyncio.timeout(5):
        await asyncio.gather(slow, return_exceptions=True)
    assert slow.cancelled() and stuck.expired
    assert not finished.expired


async def test_an_excused_command_waits_at_most_the_excused_time_or_three_more_op_timeouts() -> (
    None
):
    # In seconds, not in extensions: on a loop that runs late, each op_timeout stretches to
    # an iteration (a SIGSTOPped Redis under a loop blocked 0.3 s an iteration kept callers
    # 15 s with 15 extensions of 0.25 s).
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(forever())
    await asyncio.sleep(0)
    for op_timeout, longest in [(0.25, EXCUSED), (2.0, 2.0 * EXTENSIONS)]:
        deadlines = Deadlines(loop, op_timeout)
        began = loop.time()
        running = deadlines.start(task)
        assert running.until - began == pytest.approx(longest, abs=0.01)
        running.task = None  # ended
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_deadline_that_fires_late_was_a_busy_loop_and_is_extended_a_few_times() -> None:
    # A command's reply may come in time while CPU work holds the loop; the deadline then
    # runs late, and expiring would blame Redis for the loop. A dead Redis still expires.
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop, 0.1)
    task = asyncio.create_task(forever())
    await asyncio.sleep(0)
    running = deadlines.start(task)
    running.until = loop.time() + 1.0  # (EXCUSED, shortened for the test)
    for extensions in range(1, 4):
        time.sleep(0.3)  # noqa: ASYNC251 - the point: the loop is held past the deadline
        await settle()  # the late deadline runs
        assert (running.extensions, running.expired, task.cancelling()) == (extensions, False, 0)
    time.sleep(0.3)  # noqa: ASYNC251 - past `until` now
    await settle()
    assert running.expired
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_slot_kept_past_its_command_is_not_handed_on_until_given_back() -> None:
    # A command that gave up while its connection was being opened: the opening goes on
    # and keeps the slot (the pool counts the connection in use), so the slot the command
    # gives back is freed, not handed to a waiter who would find no connection to take.
    slots = Slots(1)
    assert slots.try_take()
    waiter = asyncio.create_task(slots.take())
    await settle()
    slots.keep()
    slots.give_back()  # the command's
    await settle()
    assert not waiter.done() and slots.busy == 1
    slots.give_back()  # the opening's, once its connection is in the pool
    await settle()
    assert waiter.done() and slots.busy == 1


async def test_a_command_due_while_redis_shows_signs_of_life_gets_more_time_a_few_times() -> None:
    # Redis answered other commands (or a connection opened) since the command's
    # op_timeout began: the wait is this process's (its queue, connections being opened
    # in a burst), not Redis's. A command due after a silent op_timeout expires at once.
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop, 60.0)  # due by hand below, never by its own timer
    task = asyncio.create_task(forever())
    silent_task = asyncio.create_task(forever())
    await asyncio.sleep(0)
    running = deadlines.start(task)
    for extensions in range(1, 4):
        deadlines.alive += 1  # a reply, or a connection opened
        running.due = loop.time()  # due now, and not late
        deadlines._expire()
        assert (running.extensions, running.expired) == (extensions, False)
    deadlines.alive += 1
    running.due = running.until = loop.time()  # it has waited as long as it may
    deadlines._expire()
    assert running.expired
    silent = deadlines.start(silent_task)
    silent.due = loop.time()
    deadlines._expire()
    assert silent.expired and silent.extensions == 0
    for each in (task, silent_task):
        with pytest.raises(asyncio.CancelledError):
            await each


async def test_a_lapse_of_the_loop_excuses_every_command_waiting_across_it() -> None:
    # A starved loop (an iteration as long as op_timeout) runs one deadline late and the
    # next on time: the second command waited across the same lapse, for replies the loop
    # did not read. Expired, it blamed Redis for the loop (a fleet on a machine busy with
    # other work opened the circuit 33 times in one run).
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop, 60.0)  # due by hand below, never by its own timer
    first_task = asyncio.create_task(forever())
    second_task = asyncio.create_task(forever())
    await asyncio.sleep(0)
    first = deadlines.start(first_task)
    second = deadlines.start(second_task)
    first.due = loop.time() - 30  # its deadline ran 30 s (half an op_timeout) late
    second.due = loop.time() + 1
    deadlines._expire()
    assert (first.extensions, first.expired, deadlines.alive) == (1, False, 1)
    second.due = loop.time()  # due now, and on time
    deadlines._expire()
    assert (second.extensions, second.expired) == (1, False)
    for each in (first_task, second_task):
        each.cancel()
    await asyncio.gather(first_task, second_task, return_exceptions=True)


async def test_a_command_that_heard_nothing_from_redis_through_lapses_still_blames_it() -> None:
    # A stalled Redis while the loop runs late all along: every deadline is excused by the
    # loop, so each command waits its extensions out; one that heard nothing from Redis in
    # all that time still counts toward the circuit. Had Redis answered anything (another
    # command, a connection opened) meanwhile, it would not.
    loop = asyncio.get_running_loop()

    async def through_lapses(replies: int) -> bool:
        deadlines = Deadlines(loop, 60.0)  # due by hand below, never by its own timer
        task = asyncio.create_task(forever())
        await asyncio.sleep(0)
        running = deadlines.start(task)
        for lapse in range(4):
            running.due = loop.time() - 30  # late: the loop's lapse
            if lapse == 3:
                running.until = running.due  # it has waited as long as it may
            deadlines._expire()
            deadlines.alive += lapse < replies  # Redis answered during the next op_timeout
        assert running.expired and running.extensions == 3
        with pytest.raises(asyncio.CancelledError):
            await task
        return deadlines.blames_redis(running)

    assert await through_lapses(replies=0)
    assert not await through_lapses(replies=1)


async def test_a_reply_read_as_the_deadline_fires_wins_over_the_deadline() -> None:
    # In a busy process the timer often fires in the loop iteration that read the reply:
    # the reply has only scheduled its command's task to resume. Judged at once, the
    # command was cancelled with its reply in hand (8 processes on 2 cores: 1 run in 5
    # loaded keys twice; the old code, every run).
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop, 60.0)  # fired by hand below
    reply: asyncio.Future[str] = loop.create_future()
    running: Running | None = None

    async def command() -> str:
        answer = await reply
        assert running is not None
        running.task = None  # as the lane's _call does when its command ends
        return answer

    task = asyncio.create_task(command())
    await asyncio.sleep(0)
    running = deadlines.start(task)
    running.due = loop.time()  # due now, not late, and no sign of life
    reply.set_result("answer")  # read in this iteration: the task resumes in the next
    deadlines._fire()  # the deadline's timer, in the same iteration
    assert await task == "answer"
    assert not running.expired
