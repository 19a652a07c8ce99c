"""A hypothesis state machine: AsyncCache against a plain model of the key states.

The model knows completed entries (value or cached failure, with expiry), the current
flight of each key, and, when `max_loads` is set, which flights hold a slot and which wait
in the FIFO queue. Every caller's outcome is predicted when its flight lands.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cachekit import AsyncCache

from .conftest import FakeClock

KEYS = st.sampled_from(["a", "b", "c"])
TTL, NEGATIVE_TTL = 10.0, 4.0


class Boom(Exception):
    pass


@dataclass
class ModelFlight:
    """One computation: fast ones finish as soon as they run, slow ones when released."""

    key: str
    value: str
    gate: asyncio.Event | None  # None: a fast computation
    ok: bool = True
    callers: list[asyncio.Task[Any]] = field(default_factory=list)
    current: bool = True  # still the key's flight in the model (not forgotten)
    landed: bool = False


class CacheMachine(RuleBasedStateMachine):
    max_loads: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.cache: AsyncCache[str, str] = AsyncCache(
            maxsize=None,
            ttl=TTL,
            negative_ttl=NEGATIVE_TTL,
            timer=self.clock,
            max_loads=self.max_loads,
        )
        # key -> (outcome, expires_at): outcome is a value, or Boom for a cached failure.
        self.entries: dict[str, tuple[str | type[Boom], float]] = {}
        self.flights: dict[str, ModelFlight] = {}  # key -> the model's current flight
        self.running: list[ModelFlight] = []  # slow flights computing now (holding a slot)
        self.queue: deque[ModelFlight] = deque()  # flights waiting for a slot, FIFO
        self.landed: list[ModelFlight] = []  # flights whose callers must now be answered
        self.model_computations = 0
        self.computations = 0  # counted by the real computations
        self.counter = 0

    def settle(self) -> None:
        for _ in range(40):
            self.loop.run_until_complete(asyncio.sleep(0))

    def fresh(self, key: str) -> tuple[str | type[Boom], float] | None:
        entry = self.entries.get(key)
        if entry is not None and entry[1] > self.clock.now:
            return entry
        self.entries.pop(key, None)
        return None

    # -------------------------------------------------------------- the model's flights

    def launch(self, flight: ModelFlight) -> None:
        slots_taken = len(self.running)
        if self.max_loads is None or slots_taken < self.max_loads:
            self.start(flight)
        else:
            self.queue.append(flight)

    def start(self, flight: ModelFlight) -> None:
        self.model_computations += 1
        if flight.gate is None:
            self.land(flight)
        else:
            self.running.append(flight)

    def land(self, flight: ModelFlight) -> None:
        flight.landed = True
        self.landed.append(flight)
        if flight.current:
            del self.flights[flight.key]
            if flight.ok:
                self.entries[flight.key] = (flight.value, self.clock.now + TTL)
            else:
                self.entries[flight.key] = (Boom, self.clock.now + NEGATIVE_TTL)
        # Its slot passes to the oldest queued flight (fast ones land and pass it on).
        while self.queue and (self.max_loads is None or len(self.running) < self.max_loads):
            self.start(self.queue.popleft())

    def forget(self, key: str) -> None:
        flight = self.flights.pop(key, None)
        if flight is not None:
            flight.current = False

    # -------------------------------------------------------------- rules

    @rule(key=KEYS, kind=st.sampled_from(["ok", "fail", "slow"]))
    def get(self, key: str, kind: str) -> None:
        self.counter += 1
        flight = ModelFlight(
            key,
            f"v{self.counter}",
            asyncio.Event() if kind == "slow" else None,
            ok=kind != "fail",
        )

        async def compute() -> str:
            self.computations += 1
            if flight.gate is not None:
                await flight.gate.wait()
            if not flight.ok:
                raise Boom(flight.value)
            return flight.value

        entry = self.fresh(key)
        current = self.flights.get(key)
        task = self.loop.create_task(self.cache.get_or_compute(key, compute))
        if entry is not None:
            self.settle()
            assert task.done()
            if entry[0] is Boom:
                assert isinstance(task.exception(), Boom)
            else:
                assert task.result() == entry[0]
        elif current is not None:
            current.callers.append(task)
        else:
            flight.callers.append(task)
            self.flights[key] = flight
            self.launch(flight)

    @precondition(lambda self: self.running)
    @rule(index=st.integers(min_value=0), ok=st.booleans())
    def release(self, index: int, ok: bool) -> None:
        flight = self.running.pop(index % len(self.running))
        assert flight.gate is not None
        flight.ok = ok
        flight.gate.set()
        self.land(flight)

    @rule(key=KEYS, value=st.text(max_size=3))
    def set(self, key: str, value: str) -> None:
        self.cache.set(key, value)
        self.forget(key)
        self.entries[key] = (value, self.clock.now + TTL)

    @rule(key=KEYS)
    def invalidate(self, key: str) -> None:
        had = self.fresh(key) is not None or key in self.flights
        dropped = self.cache.invalidate(key)
        if had:
            assert dropped
        self.entries.pop(key, None)
        self.forget(key)

    @rule()
    def clear(self) -> None:
        self.cache.clear()
        self.entries.clear()
        for key in list(self.flights):
            self.forget(key)

    @rule(seconds=st.sampled_from([0.5, 1.0, 3.0, 4.0, 6.0, 10.0]))
    def tick(self, seconds: float) -> None:
        self.clock.tick(seconds)

    # -------------------------------------------------------------- invariants

    @invariant()
    def callers_get_what_their_flight_gave(self) -> None:
        self.settle()
        for flight in self.landed:
            for caller in flight.callers:
                assert caller.done()
                if flight.ok:
                    assert caller.result() == flight.value
                else:
                    assert isinstance(caller.exception(), Boom)
        self.landed.clear()
        for flight in [*self.running, *self.queue]:
            assert not any(caller.done() for caller in flight.callers)

    @invariant()
    def membership_matches_the_model(self) -> None:
        for key in ("a", "b", "c"):
            entry = self.fresh(key)
            assert (key in self.cache) == (entry is not None)
            expected = entry[0] if entry is not None and entry[0] is not Boom else None
            assert self.cache.get(key) == expected

    @invariant()
    def one_computation_per_flight_and_no_slot_leaked(self) -> None:
        self.settle()
        assert self.computations == self.model_computations
        stats = self.cache.stats()
        assert stats.misses == self.model_computations + len(self.queue)
        assert (stats.loads_running, stats.loads_queued) == (len(self.running), len(self.queue))
        assert set(self.cache._flights) == set(self.flights)
        assert len(self.cache._entries) == len(self.cache._store)

    def teardown(self) -> None:
        while self.running:
            self.release(0, True)
        self.callers_get_what_their_flight_gave()  # also retrieves their exceptions
        self.loop.close()


class LimitedCacheMachine(CacheMachine):
    max_loads = 1


_settings = settings(max_examples=120, stateful_step_count=40, deadline=None)
CacheMachine.TestCase.settings = _settings
LimitedCacheMachine.TestCase.settings = _settings
test_cache_against_model = CacheMachine.TestCase
test_cache_with_max_loads_against_model = LimitedCacheMachine.TestCase
