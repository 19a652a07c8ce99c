"""A hypothesis state machine: AsyncCache against a plain model of the key states."""

from __future__ import annotations

import asyncio
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
    """A slow computation the test releases by hand, and the callers that await it."""

    key: str
    gate: asyncio.Event
    succeed: list[bool] = field(default_factory=lambda: [True])
    value: str = ""
    callers: list[asyncio.Task[Any]] = field(default_factory=list)
    current: bool = True  # still the key's flight in the model (not forgotten)


class CacheMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.cache: AsyncCache[str, str] = AsyncCache(
            maxsize=None, ttl=TTL, negative_ttl=NEGATIVE_TTL, timer=self.clock
        )
        # key -> (outcome, expires_at): outcome is a value, or Boom for a cached failure.
        self.entries: dict[str, tuple[str | type[Boom], float]] = {}
        self.flights: dict[str, ModelFlight] = {}  # key -> the model's current flight
        self.pending: list[ModelFlight] = []  # every flight not yet released
        self.computations = 0
        self.counter = 0

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    def settle(self) -> None:
        self.run(asyncio.sleep(0))
        self.run(asyncio.sleep(0))

    def fresh(self, key: str) -> tuple[str | type[Boom], float] | None:
        entry = self.entries.get(key)
        if entry is not None and entry[1] > self.clock.now:
            return entry
        self.entries.pop(key, None)
        return None

    def store(self, key: str, ok: bool, value: str) -> None:
        if ok:
            self.entries[key] = (value, self.clock.now + TTL)
        else:
            self.entries[key] = (Boom, self.clock.now + NEGATIVE_TTL)

    # -------------------------------------------------------------- rules

    @rule(key=KEYS, ok=st.booleans())
    def get_fast(self, key: str, ok: bool) -> None:
        """A caller whose computation completes at once (when it gets to run one)."""
        self.counter += 1
        value = f"v{self.counter}"

        async def compute() -> str:
            self.computations += 1
            if not ok:
                raise Boom(value)
            return value

        entry = self.fresh(key)
        flight = self.flights.get(key)
        task = self.loop.create_task(self.cache.get_or_compute(key, compute))
        self.settle()
        if entry is not None:
            expected: str | type[Boom] = entry[0]
        elif flight is not None:
            flight.callers.append(task)  # joined the slow flight; checked when released
            assert not task.done()
            return
        else:
            expected = value if ok else Boom
            self.store(key, ok, value)
        assert task.done()
        if expected is Boom:
            assert isinstance(task.exception(), Boom)
        else:
            assert task.result() == expected

    @rule(key=KEYS)
    def get_slow(self, key: str) -> None:
        """A caller whose computation (if it starts one) waits for `release`."""
        self.counter += 1
        flight = ModelFlight(key, asyncio.Event(), value=f"s{self.counter}")

        async def compute() -> str:
            self.computations += 1
            await flight.gate.wait()
            if not flight.succeed[0]:
                raise Boom(flight.value)
            return flight.value

        entry = self.fresh(key)
        current = self.flights.get(key)
        task = self.loop.create_task(self.cache.get_or_compute(key, compute))
        self.settle()
        if entry is not None:
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
            self.pending.append(flight)

    @precondition(lambda self: self.pending)
    @rule(index=st.integers(min_value=0), ok=st.booleans())
    def release(self, index: int, ok: bool) -> None:
        flight = self.pending.pop(index % len(self.pending))
        flight.succeed[0] = ok
        flight.gate.set()
        self.settle()
        if flight.current:
            del self.flights[flight.key]
            self.store(flight.key, ok, flight.value)
        for caller in flight.callers:
            assert caller.done()
            if ok:
                assert caller.result() == flight.value
            else:
                assert isinstance(caller.exception(), Boom)

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

    def forget(self, key: str) -> None:
        flight = self.flights.pop(key, None)
        if flight is not None:
            flight.current = False

    # -------------------------------------------------------------- invariants

    @invariant()
    def membership_matches_the_model(self) -> None:
        for key in ("a", "b", "c"):
            entry = self.fresh(key)
            assert (key in self.cache) == (entry is not None)
            expected = entry[0] if entry is not None and entry[0] is not Boom else None
            assert self.cache.get(key) == expected

    @invariant()
    def one_computation_per_flight(self) -> None:
        stats = self.cache.stats()
        assert stats.misses == self.computations
        assert set(self.cache._flights) == set(self.flights)
        assert len(self.cache._entries) == len(self.cache._store)

    def teardown(self) -> None:
        for flight in self.pending:
            flight.gate.set()
        self.settle()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


CacheMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_cache_against_model = CacheMachine.TestCase
