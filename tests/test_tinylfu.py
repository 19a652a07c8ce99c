"""TinyLFUCache: its invariants, its admission and aging, its adaptation, and the hit ratio
it is for. (The cachetools contract it shares with the other policies is in test_store.py.)
"""

from __future__ import annotations

import copy
import math
import random
import sys
from typing import Any

import cachetools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from benchmarks import traces
from cachekit import AsyncCache, TinyLFUCache, _tinylfu, async_cached
from cachekit._tinylfu import FrequencySketch


def check_invariants(cache: TinyLFUCache[Any, Any]) -> None:
    """Every key in exactly one region; region weights add up to the cachetools size."""
    window, probation, protected = cache.regions()
    held = window + probation + protected
    assert sorted(held, key=repr) == sorted(cache, key=repr)
    assert len(held) == len(set(held))  # no key in two regions
    sizes = cache.region_sizes()
    weights = [sum(cache.getsizeof(cache[k]) for k in region) for region in cache.regions()]
    assert list(sizes) == weights
    assert sum(sizes) == cache.currsize <= cache.maxsize


def replay(cache: Any, keys: list[int]) -> int:
    hits = 0
    for key in keys:
        if key in cache:
            cache[key]
            hits += 1
        else:
            cache[key] = None
    return hits


# ----------------------------------------------------------------------------- the sketch


def test_sketch_counts_saturate_at_15_and_halve_on_aging() -> None:
    sketch = FrequencySketch(64)
    h = hash(("k", 1))
    for expected in range(1, 16):
        sketch.increment(h)
        assert sketch.estimate(h) == expected
    sketch.increment(h)
    assert sketch.estimate(h) == 15  # saturated
    sketch.halve()
    assert sketch.estimate(h) == 7
    sketch.halve()
    assert sketch.estimate(h) == 3
    assert all(count <= 3 for row in sketch.rows for count in row)


def test_sketch_never_underestimates() -> None:
    rng = random.Random(3)
    sketch = FrequencySketch(16)  # small, so that keys collide
    counts: dict[int, int] = {}
    for _ in range(500):
        h = hash((rng.randrange(200), 7))
        sketch.increment(h)
        counts[h] = counts.get(h, 0) + 1
    assert all(sketch.estimate(h) >= min(n, 15) for h, n in counts.items())


def test_the_cache_ages_its_sketch_after_a_period() -> None:
    cache: TinyLFUCache[str, int] = TinyLFUCache(10, seed=1)
    cache["hot"] = 0
    for _ in range(11):
        cache["hot"]
    before = cache.frequency("hot")
    assert before == 12
    filler = 0
    while cache.frequency("hot") == before:  # misses of fresh keys until an aging
        cache[f"cold{filler}"] = filler
        filler += 1
    assert cache.frequency("hot") == before // 2
    # Aging is checked at the end of each climbing sample, once a period has passed.
    assert cache._age_period <= 12 + filler <= cache._age_period + cache._sample_size


# ----------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"maxsize": -1}, ValueError, r"^maxsize must be >= 0, got -1$"),
        ({"maxsize": float("nan")}, ValueError, r"^maxsize must be >= 0, got nan$"),
        ({"maxsize": "10"}, TypeError, r"^maxsize must be a number >= 0, got '10'$"),
        ({"maxsize": True}, TypeError, r"^maxsize must be a number >= 0, got True$"),
        ({"maxsize": 10, "getsizeof": 3}, TypeError, r"^getsizeof must be callable or None"),
        ({"maxsize": 10, "seed": "x"}, TypeError, r"^seed must be an int or None, got 'x'$"),
    ],
)
def test_bad_arguments_fail_early(kwargs: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        TinyLFUCache(**kwargs)


def test_unbounded_never_evicts() -> None:
    cache: TinyLFUCache[int, int] = TinyLFUCache(float("inf"), seed=1)
    for key in range(5_000):
        cache[key] = key
        cache[key // 2]
    assert len(cache) == 5_000
    check_invariants(cache)


# ----------------------------------------------------------------------------- admission


def filled(maxsize: int) -> TinyLFUCache[int, int]:
    """maxsize keys, each seen once: the window holds the newest, probation the rest."""
    cache: TinyLFUCache[int, int] = TinyLFUCache(maxsize, seed=1)
    for key in range(maxsize):
        cache[key] = key
    return cache


def test_a_new_key_enters_the_window_and_a_hit_on_probation_protects() -> None:
    cache = filled(100)  # the window is 1% of maxsize: 1 entry
    assert cache.regions() == ([99], list(range(99)), [])
    cache[5]
    assert cache.regions() == ([99], [k for k in range(99) if k != 5], [5])
    check_invariants(cache)


def test_popitem_evicts_the_loser_of_candidate_against_victim() -> None:
    cache = filled(100)
    evicted: list[int] = []
    popitem = cache.popitem

    def recording_popitem() -> tuple[int, int]:
        key, value = popitem()
        evicted.append(key)
        return key, value

    cache.popitem = recording_popitem  # type: ignore[method-assign]
    cache[100] = 100  # candidate 99 (seen once) against victim 0 (seen once): a tie
    assert evicted == [99]  # the candidate must beat the victim, so it goes
    for _ in range(3):
        cache[100]  # 100 is now warmer than probation's 0
    cache[101] = 101
    assert evicted == [99, 0]  # candidate 100 won: victim 0 goes, 100 joins probation
    assert 100 in cache.regions()[1]
    check_invariants(cache)


def test_every_eviction_goes_through_an_overridden_popitem_and_decides_the_same() -> None:
    # __setitem__ evicts inline when popitem is the class's own; a subclass's override
    # must see every eviction, and the policy must decide exactly as on the inline path.
    evicted: list[int] = []

    class Recording(TinyLFUCache[int, None]):
        def popitem(self) -> tuple[int, None]:
            key, value = super().popitem()
            evicted.append(key)
            return key, value

    keys = traces.zipf(0.9, 2_000, 20_000, seed=3).keys
    plain: TinyLFUCache[int, None] = TinyLFUCache(100, seed=2)
    recording = Recording(100, seed=2)
    assert replay(plain, keys) == replay(recording, keys)
    assert plain.regions() == recording.regions()
    assert plain.window_maxsize == recording.window_maxsize
    misses = len(keys) - replay(TinyLFUCache(100, seed=2), keys)
    assert len(evicted) == misses - 100  # one eviction per miss once full
    check_invariants(recording)


def test_a_scan_does_not_flush_the_popular_keys() -> None:
    cache: TinyLFUCache[int, int] = TinyLFUCache(100, seed=1)
    popular = list(range(50))
    for _ in range(5):
        for key in popular:
            if key not in cache:
                cache[key] = key
            cache[key]
    for key in range(1_000, 3_000):  # a scan of 2,000 one-off keys
        cache[key] = key
    assert all(key in cache for key in popular)
    check_invariants(cache)


def contest_streak(candidates: int, *, warm: bool) -> list[int]:
    """Victim 0 (probation's least recent key, its counters saturated before each contest)
    against `candidates` new keys, each hit 6 times in the window first when `warm` (an
    estimate of 7 > 5): the candidates admitted, in order."""
    cache = filled(100)
    cache._sample_size = 1 << 62  # no sample ends: the window stays 1 entry, no aging
    victim_hash = hash((0, cache._salt))  # the regions hold packed indexes, not the hash
    admitted = []
    for n in range(candidates + 1):
        for _ in range(15):
            cache._sketch.increment(victim_hash)
        cache[1_000 + n] = n  # the previous key, now the window's candidate, contests victim 0
        if n and 1_000 + n - 1 in cache:
            assert 0 not in cache
            admitted.append(1_000 + n - 1)
        for _ in range(6 if warm else 0):
            cache[1_000 + n]
    check_invariants(cache)
    return admitted


def test_a_victim_that_beat_256_warm_candidates_in_a_row_loses_to_the_next() -> None:
    assert contest_streak(256, warm=True) == []  # each lost to the saturated victim 0
    assert contest_streak(257, warm=True) == [1_256]  # the 257th got in, in place of 0
    assert contest_streak(600, warm=False) == []  # cold candidates: no streak at all


def test_keys_that_share_the_victims_hash_cannot_shut_out_newcomers() -> None:
    # Ints that differ by a multiple of the hash modulus hash alike, so whatever the salt
    # they share the victim's counters in the sketch: an attacker can keep them saturated,
    # and every key of theirs that gets in is such a victim too.
    cache = filled(100)  # 0 is probation's least recent key: the first victim
    cache._sample_size = 1 << 62  # no sample ends: the window stays 1 entry, no aging
    modulus = sys.hash_info.modulus
    assert hash(modulus) == hash(0)
    for i in range(1, 16):
        cache[i * modulus] = None  # the victim's counters saturate (15)
    admitted = set()
    for n in range(6, 2_000):
        for i in range(1, 4):
            cache[(3 * n + i) * modulus] = None  # misses counted on the victim's counters
        key = 10_000 + n
        cache[key] = None  # a newcomer used 7 times: warm, but colder than the victim
        for _ in range(6):
            cache[key]
        admitted |= {k for k in cache.regions()[1] if 10_000 < k < 12_000}
    assert 0 not in cache
    assert len(admitted) >= 5  # each victim holds out for 256 warm candidates, not for ever
    check_invariants(cache)


# ----------------------------------------------------------------------------- weights


def test_weights_are_tracked_per_region() -> None:
    cache: TinyLFUCache[str, int] = TinyLFUCache(100, getsizeof=lambda v: v, seed=1)
    for i in range(40):
        cache[f"k{i}"] = 1 + i % 7
        if i % 3 == 0:
            cache.get(f"k{i // 2}")  # a hit when still held
        check_invariants(cache)
    cache["big"] = 60  # several entries go to make room for one heavy one
    assert "big" in cache
    check_invariants(cache)
    cache["big"] = 1  # a lighter value frees room in its region
    check_invariants(cache)


# ----------------------------------------------------------------------------- adaptation


def recency_trace(seed: int, length: int, live: int = 400, spread: int = 40) -> list[int]:
    """Each key is used a few times close together (about `spread` keys apart), then never
    again (once `live` newer keys came): recency pays."""
    rng = random.Random(seed)
    out: list[int] = []
    next_key = 0
    recent: list[int] = []
    while len(out) < length:
        if len(recent) < 150 or rng.random() < 0.2:
            recent.append(next_key)
            next_key += 1
        key = recent[-1 - min(int(rng.expovariate(1 / spread)), len(recent) - 1)]
        out.append(key)
        if len(recent) > live:
            recent.pop(0)
    return out


def test_the_window_grows_on_a_recency_trace_and_shrinks_on_a_frequency_trace() -> None:
    start = TinyLFUCache(200, seed=1).window_maxsize
    assert start == 2  # 1% of maxsize
    recency: TinyLFUCache[int, None] = TinyLFUCache(200, seed=1)
    replay(recency, recency_trace(seed=5, length=60_000))
    frequency: TinyLFUCache[int, None] = TinyLFUCache(200, seed=1)
    replay(frequency, traces.loop(300, 60_000).keys)
    assert recency.window_maxsize > 100  # over half the cache: mostly LRU
    assert frequency.window_maxsize < 20  # under a tenth of it: mostly LFU
    check_invariants(recency)
    check_invariants(frequency)


def zigzag(keys: int, length: int) -> list[int]:
    """Sweeps up and down over the same keys: every key is as frequent as every other, and
    the keys just used are the next ones used again. An LRU's pattern (LIRS2's zigzag)."""
    sweep = list(range(keys)) + list(range(keys - 1, -1, -1))
    return (sweep * (length // len(sweep) + 1))[:length]


def test_the_shadow_lru_grows_the_window_where_density_alone_would_not() -> None:
    # In a zigzag the window and main are about as dense (the frequency gate freezes main,
    # whose keys are all hit once per sweep), so density alone leaves the window at 1%; the
    # shadow LRU sees that an LRU hits half the sampled keys and this cache far fewer.
    cache: TinyLFUCache[int, None] = TinyLFUCache(500, seed=1)
    keys = zigzag(2_000, 40_000)
    hits = replay(cache, keys)
    assert cache.window_maxsize > 400
    assert hits >= replay(cachetools.LRUCache(500), keys) - len(keys) // 20  # 5 points
    check_invariants(cache)


def test_the_window_grows_by_the_shadow_lrus_lead_not_by_a_fixed_step() -> None:
    # In a zigzag an LRU hits about half of the accesses and this cache, with a 1% window,
    # almost none: one sample of that lead moves the window by most of the cache at once
    # (a fixed step of 10% would take 9 samples to get there).
    cache: TinyLFUCache[int, None] = TinyLFUCache(500, seed=1)
    windows = []
    for key in zigzag(2_000, 6_000):
        if key in cache:
            cache[key]
        else:
            cache[key] = None
        if cache._evicting and cache._hits + cache._misses == 0:  # a sample just ended
            windows.append(cache.window_maxsize)
    assert windows[0] == 5  # the first sample began when the cache filled up
    assert windows[1] > 250  # one sample later: over half the cache
    check_invariants(cache)


def test_a_sample_without_hits_leaves_the_window_where_it_is() -> None:
    cache: TinyLFUCache[int, None] = TinyLFUCache(100, seed=1)
    replay(cache, list(range(100)))  # full now; 100 misses, no hit
    before = cache.window_maxsize
    replay(cache, list(range(1_000, 1_000 + cache._sample_size)))  # a sample of misses only
    assert cache.window_maxsize == before


def test_the_first_sample_that_moves_the_window_starts_when_the_cache_is_full() -> None:
    cache: TinyLFUCache[int, None] = TinyLFUCache(3_000, seed=1)
    # Filling up takes longer than a sample (1,000 new keys, hits on the last 30 between):
    # those samples say nothing about the window, and the window stays at 1%.
    keys = [k for i in range(3_000) for k in ([i] if i % 100 else [i, *range(i - 30, i)])]
    replay(cache, keys)
    assert cache.window_maxsize == 30
    sample = cache._sample_size
    assert cache._hits + cache._misses < sample  # a sample that began when it filled up
    # Recency from here (each new key hit 3 times soon after): one sample moves the window.
    recent = [k for i in range(10_000, 10_000 + sample) for k in (i, i, i - 5, i - 9)]
    replay(cache, recent[:sample])
    assert cache.window_maxsize > 30


def test_the_shadow_lru_holds_sampled_indexes_never_the_keys() -> None:
    cache: TinyLFUCache[str, None] = TinyLFUCache(64, seed=1)
    for i in range(5_000):
        cache[f"key{i % 300}"] = None
        cache.get(f"key{(i * 7) % 300}")
    assert cache._shadow  # something was sampled
    assert all(type(h) is int and h >= 0 for h in cache._shadow)
    assert len(cache._shadow) <= cache._shadow_size


def test_a_small_cache_has_a_sketch_for_512_keys() -> None:
    assert TinyLFUCache(10, seed=1)._sketch.width == FrequencySketch(512).width
    assert TinyLFUCache(10_000, seed=1)._sketch.width == FrequencySketch(10_000).width


# ----------------------------------------------------------------------------- the duel


def test_the_duel_has_leaders_of_16_entries_or_more_at_1_in_128() -> None:
    assert TinyLFUCache(1_024, seed=1)._leaders == ()  # the shadow LRU samples 1 in 32
    assert TinyLFUCache(2_047, seed=1)._leaders == ()  # 1 in 128: leaders of 15 entries
    leaders = TinyLFUCache(2_048, seed=1)._leaders
    assert [leader.size for leader in leaders] == [16, 16]
    assert [leader.window_max for leader in leaders] == [0.16, 3.2]  # 1% and 20%
    assert TinyLFUCache(100_000, getsizeof=len, seed=1)._leaders == ()  # they count entries
    assert TinyLFUCache(math.inf, seed=1)._leaders == ()


def test_the_duel_locks_the_window_to_1_percent_on_a_loop_and_to_lru_on_recency() -> None:
    # A loop longer than the cache: a 1% window keeps most of it, 20% less, an LRU nothing.
    loop: TinyLFUCache[int, None] = TinyLFUCache(2_048, seed=1)
    replay(loop, traces.loop(3_000, 20_000).keys)
    assert loop._choice == -1  # the leaders are not full and warm yet: no evidence
    replay(loop, traces.loop(3_000, 80_000).keys)
    assert loop._choice == 0
    assert loop.window_maxsize == 0.01 * 2_048
    # Recency (keys used a few times close together): an LRU, the shadow, wins.
    recency: TinyLFUCache[int, None] = TinyLFUCache(2_048, seed=1)
    replay(recency, recency_trace(seed=5, length=60_000, live=8_000, spread=800))
    assert recency._choice == 2
    assert recency.window_maxsize == 0.99 * 2_048
    check_invariants(loop)
    check_invariants(recency)


def test_the_duel_finds_a_share_the_climber_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    # Shifting popularity at 2,048 entries: the 20% leader beats the others, and that share
    # hits more than where the density climber and the shadow LRU's jumps take the window.
    keys = traces.shifting(40_000, 600_000, seed=11).keys
    duel: TinyLFUCache[int, None] = TinyLFUCache(2_048, seed=1)
    with_duel = replay(duel, keys)
    assert duel._choice == 1
    assert duel.window_maxsize == 0.2 * 2_048
    monkeypatch.setattr(_tinylfu, "_LEADER_MIN", 1 << 30)  # no leaders
    climber: TinyLFUCache[int, None] = TinyLFUCache(2_048, seed=1)
    assert climber._leaders == ()
    without = replay(climber, keys)
    assert climber.window_maxsize != 0.2 * 2_048
    assert with_duel > without + len(keys) // 200  # half a point


def test_a_copy_duels_on_its_own() -> None:
    cache: TinyLFUCache[int, None] = TinyLFUCache(2_048, seed=1)
    replay(cache, traces.loop(3_000, 40_000).keys)
    twin = copy.copy(cache)
    assert twin._leaders[0].window is not cache._leaders[0].window
    more = traces.loop(3_000, 60_000).keys
    assert replay(twin, more) == replay(cache, more)  # shared leaders would see both
    assert twin._choice == cache._choice == 0
    assert twin._patterns == cache._patterns
    assert twin.regions() == cache.regions()


def test_the_leaders_hold_sampled_indexes_and_no_more_than_their_size() -> None:
    cache: TinyLFUCache[int, None] = TinyLFUCache(2_048, seed=1)
    replay(cache, traces.zipf(0.9, 40_000, 100_000, seed=3).keys)
    shift = cache._shift
    for leader in cache._leaders:
        held = [*leader.window, *leader.probation, *leader.protected]
        assert len(held) == len(set(held)) == leader.size  # full, each key once
        assert len(leader.probation) + len(leader.protected) <= leader.main_max
        assert len(leader.protected) <= leader.protected_max
        assert all(h >= 0 and not (h >> shift) & cache._shadow_mask for h in held)
        assert not any(h & cache._leader_mask for h in held)  # half the shadow's sample


# ----------------------------------------------------------------------------- hit ratio


@pytest.mark.parametrize(
    ("name", "keys", "size"),
    [
        ("zipf", traces.zipf(0.9, 10_000, 30_000, seed=11).keys, 300),
        ("loop", traces.loop(600, 12_000).keys, 400),
        ("scan", traces.scan_polluted(8_000, 30_000, seed=11).keys, 400),
        ("shifting", traces.shifting(8_000, 40_000, seed=11).keys, 300),
        ("zigzag", zigzag(1_000, 100_000), 250),
    ],
)
def test_hit_ratio_is_within_a_point_of_the_best_of_lru_and_lfu(
    name: str, keys: list[int], size: int
) -> None:
    ours = replay(TinyLFUCache(size, seed=1), keys)
    best = max(
        replay(cachetools.LRUCache(size), keys),
        replay(cachetools.LFUCache(size), keys),
    )
    assert 100 * ours / len(keys) >= 100 * best / len(keys) - 1


# ----------------------------------------------------------------------------- AsyncCache


async def test_async_cache_with_policy_tinylfu_counts_every_hit() -> None:
    cache: AsyncCache[str, int] = AsyncCache(maxsize=10, policy="tinylfu")
    store = cache._store
    assert isinstance(store, TinyLFUCache)

    async def load() -> int:
        return 1

    await cache.get_or_compute("k", load)
    for _ in range(5):
        await cache.get_or_compute("k", load)  # hits, buffered
    await cache.get_or_compute("other", load)  # a miss replays the buffered hits first
    assert store.frequency("k") == 6  # the insert and every one of the 5 hits
    assert cache.stats().hits == 5


async def test_async_cached_accepts_policy_tinylfu() -> None:
    calls = 0

    @async_cached(maxsize=3, policy="tinylfu")
    async def double(x: int) -> int:
        nonlocal calls
        calls += 1
        return 2 * x

    assert [await double(x) for x in (1, 1, 2, 3, 1, 2)] == [2, 2, 4, 6, 2, 4]
    assert calls == 3
    assert isinstance(double.cache._store, TinyLFUCache)


# ----------------------------------------------------------------------------- model


class TinyLFUAgainstModel(RuleBasedStateMachine):
    """Membership and values against a plain dict: whatever the cache keeps, it keeps
    with the right value; a key just set is always kept; the bound always holds."""

    def __init__(self) -> None:
        super().__init__()
        self.cache: TinyLFUCache[int, int] = TinyLFUCache(4, seed=0)
        self.model: dict[int, int] = {}

    keys = st.integers(0, 12)

    def _sync(self) -> None:
        # Evictions are the policy's choice: drop from the model what the cache dropped,
        # after checking it never holds anything the model does not.
        assert set(self.cache) <= set(self.model)
        self.model = {k: v for k, v in self.model.items() if k in self.cache}

    @rule(key=keys, value=st.integers())
    def set(self, key: int, value: int) -> None:
        self.cache[key] = value
        self.model[key] = value
        self._sync()
        assert self.cache[key] == value

    @rule(key=keys)
    def get(self, key: int) -> None:
        assert self.cache.get(key) == self.model.get(key)

    @rule(key=keys)
    def delete(self, key: int) -> None:
        if key in self.model:
            del self.cache[key]
            del self.model[key]
        else:
            with pytest.raises(KeyError):
                del self.cache[key]

    @precondition(lambda self: bool(self.model))
    @rule()
    def popitem(self) -> None:
        key, value = self.cache.popitem()
        assert self.model.pop(key) == value

    @rule(share=st.floats(0, 4))
    def adapt(self, share: float) -> None:
        self.cache._resize_window(share)

    @invariant()
    def agrees(self) -> None:
        assert dict(self.cache.items()) == self.model
        assert len(self.cache) <= 4
        check_invariants(self.cache)


TinyLFUAgainstModel.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
test_tinylfu_against_a_dict_model = TinyLFUAgainstModel.TestCase


@given(
    ops=st.lists(st.tuples(st.integers(0, 20), st.integers(1, 5)), max_size=80),
    maxsize=st.integers(1, 12),
)
def test_weighted_bound_and_regions_hold(ops: list[tuple[int, int]], maxsize: int) -> None:
    cache: TinyLFUCache[int, int] = TinyLFUCache(maxsize, getsizeof=lambda v: v, seed=0)
    for key, weight in ops:
        if weight > maxsize:
            continue
        if key % 3 == 0 and key in cache:
            cache[key]
        else:
            cache[key] = weight
            assert cache[key] == weight
        check_invariants(cache)


async def test_async_cache_counts_tinylfu_evictions() -> None:
    cache: AsyncCache[int, int] = AsyncCache(maxsize=2, policy="tinylfu")

    async def load() -> int:
        return 0

    for key in range(5):
        await cache.get_or_compute(key, load)
    stats = cache.stats()
    assert (len(cache), stats.evictions, stats.misses) == (2, 3, 5)


async def test_a_weighted_tinylfu_store_weighs_values_not_entries() -> None:
    store: TinyLFUCache[Any, Any] = TinyLFUCache(10, getsizeof=len, seed=1)
    cache: AsyncCache[str, bytes] = AsyncCache(store=store)
    for key, size in [("a", 4), ("b", 4), ("c", 4)]:

        async def load(size: int = size) -> bytes:
            return b"x" * size

        await cache.get_or_compute(key, load)
    assert (store.currsize, len(store), cache.stats().evictions) == (8, 2, 1)
    assert sum(store.region_sizes()) == 8
