"""The hit-ratio benchmark's reference: Bélády's OPT must really be optimal."""

from __future__ import annotations

from functools import cache

from hypothesis import given
from hypothesis import strategies as st

from benchmarks import traces


def best_possible_hits(keys: tuple[int, ...], capacity: int) -> int:
    """Exhaustive search over every admission and eviction choice (tiny traces only)."""

    @cache
    def best(i: int, held: frozenset[int]) -> int:
        if i == len(keys):
            return 0
        key = keys[i]
        if key in held:
            return 1 + best(i + 1, held)
        options = [best(i + 1, held)]  # bypass: do not admit it
        if len(held) < capacity:
            options.append(best(i + 1, held | {key}))
        else:
            options.extend(best(i + 1, (held - {victim}) | {key}) for victim in held)
        return max(options)

    return best(0, frozenset())


@given(
    keys=st.lists(st.integers(0, 4), max_size=12),
    capacity=st.integers(1, 3),
)
def test_opt_equals_exhaustive_search(keys: list[int], capacity: int) -> None:
    assert traces.opt_hits(keys, capacity) == best_possible_hits(tuple(keys), capacity)


def test_loop_larger_than_the_cache() -> None:
    trace = traces.loop(3, 30).keys  # 0 1 2 0 1 2 ...
    # With bypass, OPT keeps {0, 1} and never admits 2: two hits in each of the nine rounds
    # after the first.
    assert traces.opt_hits(trace, 2) == 18
    assert traces.opt_hits(trace, 3) == 27


def test_synthetic_traces_are_reproducible_from_their_seed() -> None:
    assert traces.zipf(0.9, 100, 50, seed=1) == traces.zipf(0.9, 100, 50, seed=1)
    assert traces.zipf(0.9, 100, 50, seed=1) != traces.zipf(0.9, 100, 50, seed=2)
    assert len(traces.scan_polluted(100, 10_000, seed=3).keys) == 10_000
