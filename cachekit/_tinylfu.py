"""TinyLFUCache: adaptive W-TinyLFU eviction as a `cachetools.Cache` subclass.

The design follows Caffeine's (Einziger, Friedman and Manes, "TinyLFU: A Highly Efficient
Cache Admission Policy"; Caffeine's design notes); the code is written anew for CPython.

- Every new key enters the *window*, a small LRU, so a burst of new keys can be hit a few
  times before it has to prove itself.
- The rest of the space is the *main* region, a segmented LRU: *probation* holds entries on
  trial, *protected* (80% of main) holds entries hit again while on probation.
- When the cache is full and the window is over its share, the window's least recent key
  (the candidate) contests main's least recent key (the victim): a count-min sketch
  estimates both keys' recent frequency and the loser is evicted. So one-off keys never
  push out popular ones, and a scan passes through the window only.
- The sketch's counters saturate at 15 and are halved after every 16 * maxsize accesses,
  so old popularity fades. It has room for at least 512 keys' counters: a small cache
  still sees many more keys than it holds, and a sketch that narrow blurs their counts.
- The window's share (1% at first, never less) adapts once per sample of 2 * maxsize
  accesses (at least 1,000, at most 20,000; the first one starts when the cache is full).
  It moves toward equal *density*: hits per unit of size in the window against those in
  main, both counted in the same sample, so the workload's own swings (which move both)
  are no reason to move; a step is 3% of maxsize per unit of their log ratio, at most 30%.
  Density alone rests where each region's share of the hits is its share of the space,
  which leaves the window too small where recency rules: a *shadow LRU* of 16 to 32
  entries, fed the keys whose salted hash falls in a 1-in-(maxsize / 32) sample, says when
  an LRU would have hit more of those keys than this cache did (by over a point, in the last
  samples, and by more than one standard error of the accesses only one of the two hit), and
  then the window grows by twice that lead (10% of maxsize at least, 90% at most). Growing
  the window moves main's least recent keys into it, so they contest their way back rather
  than go unheard.
  Where that sample is 1 in 64 (maxsize 2,048 or more), two *leaders* run beside the
  shadow LRU on half its sampled keys (1 in 128): keys-only W-TinyLFUs of half as many
  entries whose windows are fixed at 1% and 20% (the shadow LRU stands for 99%, an LRU
  being that share's limit).
  They are compared in pairs on the sampled accesses one hit and the other missed, counts
  that fade over at least 16,384 sampled accesses; once one beats each other by two
  standard errors (on 64 such accesses at least, counted once the leaders are full and
  have seen 4 x their size more), the window takes its share and keeps it until another
  beats it so. This is set dueling, as in CPU caches: slow, but on long traces it finds the
  share that the steps above miss (benchmarks/adapt_variants.py, round 8).
  (Hill climbing on the hit rate, the indicator from the sketch and mini-simulation were
  measured against this: benchmarks/adapt.py, and the changelog.)
- Against hash flooding: the sketch mixes each key's hash with a per-instance random salt,
  and a victim that has beaten 256 warm candidates (estimate above 5) in a row loses to the
  next one, so keys that collide with a victim (ints equal modulo the hash modulus do,
  whatever the salt) cannot keep it in place for ever. A random admission (Caffeine's 1 in
  128) does the same on average, but in a loop longer than the cache, where main's least
  recent key faces hundreds of candidates as frequent as itself, each random win evicts a
  key about to be used: it cost loops up to 4.5 points of hit ratio.

No doorkeeper (a Bloom filter that absorbs each key's first use): an exact one, an upper
bound for what a Bloom filter can do, left the mean gap to OPT on the benchmark's 29 traces
and sizes where it was (9.56 against 9.57 points) for one more lookup on every access.

cachetools' `Cache` keeps the items (its private dict, which cachekit's hit path reads) and,
with `getsizeof`, their total size; this class keeps the regions beside them and answers
`popitem()`. With unit weights it stores, drops and evicts items in that dict itself, as
Cache would, so a miss costs no call into Cache: cachetools 8's `LRUCache` became about twice
as fast as 5's, and this policy's cost is measured against it (benchmarks/hitratio.py).
"""

from __future__ import annotations

import math
import os
import random
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any, ClassVar, Final, TypeVar

import cachetools

from ._cachetools_compat import copy_cache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# cachetools' own item storage and size accounting, called directly on the hot paths.
_cache_setitem: Final = cachetools.Cache.__setitem__
_cache_delitem: Final = cachetools.Cache.__delitem__

_COUNTER_MAX: Final = 15
#: A counter's value after aging, for `bytearray.translate` (which halves a row in C).
_HALVE: Final = bytes(count >> 1 for count in range(256))
_MAX_WIDTH: Final = 1 << 30  # a row's index comes from 32 bits of the key's hash

_WINDOW_START: Final = 0.01  # the window's first share of maxsize
_WINDOW_MIN: Final = 0.01  # and its least: with no window at all, a loop thrashes
_MAIN_MIN: Final = 0.01  # main's least share, so its density can always be measured
_PROTECTED_SHARE: Final = 0.8  # protected's share of the main region
_GAIN: Final = 0.03  # a step, as a share of maxsize, per unit of log density ratio
_MAX_STEP: Final = 0.3  # the largest step, as a share of maxsize
_SHADOW_KEYS: Final = 32  # the shadow LRU's entries: 16 to 32 (maxsize / sampling rate),
_SHADOW_RATE_MAX: Final = 64  # or more, so that it sees 1 access in 64 or more
_BEHIND: Final = 0.01  # the shadow LRU this far ahead on the sampled keys: grow the window
_JUMP: Final = 0.1  # by at least this share of maxsize,
_JUMP_GAIN: Final = 2.0  # or this many times how far behind (a share of the sampled accesses),
_JUMP_MAX: Final = 0.9  # at most this share of maxsize at once
_SIGNIFICANT: Final = 1.0  # and only when the shadow's lead is this many standard errors
_LEADER_SHARES: Final = (0.01, 0.2)  # the leaders' fixed window shares (see _Leader)
_LRU_SHARE: Final = 0.99  # the share the shadow LRU stands for against them
_LEADER_SUBSAMPLE: Final = 2  # the leaders see 1 in this many of the shadow LRU's keys
_LEADER_MIN: Final = 16  # and hold this many entries at least (maxsize 2,048 or more)
_DUEL_HORIZON: Final = 32  # the duel's counts fade over this many x the leaders' size,
_DUEL_HORIZON_MIN: Final = 16_384  # and at least this many sampled accesses
_DUEL_EVIDENCE: Final = 64  # a lead counts on this many discordant accesses at least,
_DUEL_Z: Final = 2.0  # and when it is this many standard errors of them
_DUEL_WARM: Final = 4  # the leaders' first this many x their size sampled accesses: no count
_WARM: Final = 5  # a losing candidate estimated above this counts in the victim's streak
_STREAK: Final = 256  # a victim that beat this many warm candidates in a row loses to the next
_WIDTH_FACTOR: Final = 8  # counters per row, per unit of capacity (rounded up to a power of 2)
_AGE_FACTOR: Final = 16  # accesses between agings, per unit of capacity
_SAMPLE_FACTOR: Final = 2  # accesses per adaptation sample, per unit of capacity
_SAMPLE_MIN: Final = 1_000  # and at least this many (fewer hits say too little)
_SAMPLE_MAX: Final = 20_000  # and at most this many (a large cache must adapt in time too)
_SKETCH_MIN: Final = 512  # the sketch is sized for at least this many keys (see _reset_policy)
_FIRST_CAPACITY: Final = 64  # sketch capacity when maxsize does not bound the entry count


class FrequencySketch:
    """A count-min sketch of recent frequency by hash: 2 rows of counters that saturate at
    15, updated conservatively (only the smallest counters of a hash go up).

    A hash's estimate is the smaller of its two counters: it may overestimate (collisions),
    never underestimates what was counted since the last halving. Two rows, not Caffeine's
    four: each row costs CPython about 100 ns an access, and conservative update keeps the
    overestimates small (see the README's hit-ratio table).
    """

    __slots__ = ("mask", "rows", "shift", "width")

    def __init__(self, capacity: int) -> None:
        # Two counters per expected key in each row, in a power of two for masking.
        self.width = min(1 << max(4, (_WIDTH_FACTOR * capacity - 1).bit_length()), _MAX_WIDTH)
        self.mask = self.width - 1
        self.shift = self.width.bit_length() - 1
        # Invariant: every counter is in 0..15. The rows are changed in place only, so a
        # reference to them stays valid (TinyLFUCache's hot path holds one).
        self.rows = (bytearray(self.width), bytearray(self.width))

    def increment(self, h: int) -> None:
        first, second = self.rows
        i = h & self.mask
        j = (h >> 32) & self.mask
        a = first[i]
        b = second[j]
        if a <= b and a < _COUNTER_MAX:
            first[i] = a + 1
        if b <= a and b < _COUNTER_MAX:
            second[j] = b + 1

    def index(self, h: int) -> int:
        """A hash's two counter indexes packed in one int, `i | j << shift`: unpacking it
        (`& mask`, `>> shift`) costs CPython less than the hash's own `& mask` and `>> 32`,
        as it fits in one 30-bit digit while the width is at most 2**15."""
        mask = self.mask
        return (h & mask) | ((h >> 32) & mask) << self.shift

    def estimate(self, h: int) -> int:
        first, second = self.rows
        return min(first[h & self.mask], second[(h >> 32) & self.mask])

    def increment_at(self, index: int) -> None:
        """`increment` for packed indexes (`index`). The cache's hot paths inline it."""
        first, second = self.rows
        i = index & self.mask
        j = index >> self.shift
        a = first[i]
        b = second[j]
        if a <= b and a < _COUNTER_MAX:
            first[i] = a + 1
        if b <= a and b < _COUNTER_MAX:
            second[j] = b + 1

    def estimate_at(self, index: int) -> int:
        """`estimate` for packed indexes (`index`). The cache's hot paths inline it."""
        first, second = self.rows
        return min(first[index & self.mask], second[index >> self.shift])

    def halve(self) -> None:
        """Age every counter: halve it, rounding down."""
        for row in self.rows:
            row[:] = row.translate(_HALVE)

    def clear(self) -> None:
        for row in self.rows:
            row[:] = bytes(self.width)

    def copy(self) -> FrequencySketch:
        twin = FrequencySketch(1)
        twin.width, twin.mask, twin.shift = self.width, self.mask, self.shift
        twin.rows = (bytearray(self.rows[0]), bytearray(self.rows[1]))
        return twin


class _Leader:
    """A keys-only W-TinyLFU whose window share never moves, for the duel of window shares
    (see `TinyLFUCache._replay_shadow`): its keys are the sampled keys' packed indexes (the
    shadow LRU's), each mapped to its packed indexes in the sketch the leaders share. Unit
    weights; the contest and the streak rule are the cache's own."""

    __slots__ = (
        "champion",
        "main_max",
        "probation",
        "protected",
        "protected_max",
        "size",
        "window",
        "window_max",
        "wins",
    )

    def __init__(self, size: int, share: float) -> None:
        self.size = size
        # As TinyLFUCache._resize_window: 1% at least, and main keeps 1% and 1 entry.
        most = max(size - max(size * _MAIN_MIN, 1), size * _WINDOW_MIN)
        self.window_max = min(max(share * size, size * _WINDOW_MIN), most)
        self.main_max = size - self.window_max
        self.protected_max = self.main_max * _PROTECTED_SHARE
        # Invariant: a key is in at most one region, and they hold `size` keys at most.
        self.window: OrderedDict[int, int] = OrderedDict()  # least recent first
        self.probation: OrderedDict[int, int] = OrderedDict()  # least recent first
        self.protected: OrderedDict[int, int] = OrderedDict()  # least recent first
        self.champion: int | None = None  # as TinyLFUCache._outlasted
        self.wins = 0

    def access(self, key: int, index: int, sketch: FrequencySketch) -> bool:
        """Whether `key` hits; a miss adds it (`index`: its packed indexes in `sketch`,
        which the caller increments after every leader has seen the access)."""
        protected = self.protected
        if key in protected:
            protected.move_to_end(key)
            return True
        window = self.window
        if key in window:
            window.move_to_end(key)
            return True
        probation = self.probation
        found = probation.pop(key, None)
        if found is not None:
            protected[key] = found
            while len(protected) > self.protected_max:
                demoted, demoted_index = protected.popitem(False)
                probation[demoted] = demoted_index
            return True
        if len(window) + len(probation) + len(protected) >= self.size:
            self._evict(sketch)
        window[key] = index
        # While the leader fills up, the window's excess moves into main, as long as it fits.
        while (
            len(window) > self.window_max and len(probation) + len(protected) + 1 <= self.main_max
        ):
            spilled, spilled_index = window.popitem(False)
            probation[spilled] = spilled_index
        return False

    def _evict(self, sketch: FrequencySketch) -> None:
        """TinyLFUCache.popitem for a new key, keys only."""
        window = self.window
        probation = self.probation
        protected = self.protected
        while window and len(window) + 1 > self.window_max:
            candidate, candidate_index = window.popitem(False)
            if len(probation) + len(protected) + 1 <= self.main_max:
                probation[candidate] = candidate_index
                continue
            region = probation or protected
            if region:
                victim = next(iter(region))
                candidate_freq = sketch.estimate_at(candidate_index)
                admit = candidate_freq > sketch.estimate_at(region[victim])
                if not admit and candidate_freq > _WARM:
                    if victim != self.champion:
                        self.champion = victim
                        self.wins = 1
                    elif self.wins < _STREAK:
                        self.wins += 1
                    else:
                        self.champion = None
                        admit = True
                if admit:
                    probation[candidate] = candidate_index
                    del region[victim]
            return
        for region in (probation, protected, window):
            if region:
                region.popitem(False)
                return

    def copy(self) -> _Leader:
        twin = _Leader(self.size, 0)
        for name in self.__slots__:
            value = getattr(self, name)
            setattr(twin, name, value.copy() if isinstance(value, OrderedDict) else value)
        return twin


class TinyLFUCache(cachetools.Cache[K, V]):
    """Adaptive W-TinyLFU: an LRU window in front of a frequency-gated segmented LRU.

    A `cachetools.Cache`: `TinyLFUCache(maxsize, getsizeof=None)`, alone or as an
    `AsyncCache`'s store (`policy="tinylfu"`). `seed` makes the sketch's salted hashing,
    and so every decision, reproducible; by default the salt comes from `os.urandom`.
    """

    #: Whether `popitem` is this class's own, so `__setitem__` may do its work inline; a
    #: subclass that overrides it gets its own called for every eviction, as in Cache.
    _own_popitem: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._own_popitem = cls.popitem is TinyLFUCache.popitem

    def __init__(
        self,
        maxsize: float,
        getsizeof: Callable[[V], float] | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int | float):
            raise TypeError(f"maxsize must be a number >= 0, got {maxsize!r}")
        if math.isnan(maxsize) or maxsize < 0:
            raise ValueError(f"maxsize must be >= 0, got {maxsize!r}")
        if getsizeof is not None and not callable(getsizeof):
            raise TypeError(f"getsizeof must be callable or None, got {getsizeof!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        super().__init__(maxsize, getsizeof)
        self._data: dict[K, V] = self._Cache__data  # type: ignore[attr-defined]
        self._maxsize = maxsize
        self._salt = random.Random(
            int.from_bytes(os.urandom(8)) if seed is None else seed
        ).getrandbits(62)
        # Each key's weight, only when getsizeof was given (or a subclass defines it);
        # otherwise every key weighs 1. Invariant: same keys as the items.
        self._weights: dict[K, float] | None = (
            None if self.getsizeof is cachetools.Cache.getsizeof else {}
        )
        # Invariant: each key of the items is in exactly one region, mapped to its counters'
        # indexes in the sketch, packed (FrequencySketch.index of its salted hash: a hit
        # costs no rehash); each `_*_size` is the total weight of its region.
        self._window: OrderedDict[K, int] = OrderedDict()  # least recent first
        self._probation: OrderedDict[K, int] = OrderedDict()  # least recent first
        self._protected: OrderedDict[K, int] = OrderedDict()  # least recent first
        self._window_size: float = 0
        self._probation_size: float = 0
        self._protected_size: float = 0
        # The weight of the new key that cachetools is making room for while it calls
        # popitem() from `__setitem__` (0 otherwise): it counts as already in the window.
        self._incoming: float = 0
        self._reset_policy()

    def _reset_policy(self) -> None:
        """The sketch, the region shares and the climber, as for an empty cache."""
        maxsize = self._maxsize
        if self._weights is not None or math.isinf(maxsize):
            capacity = _FIRST_CAPACITY  # grows with the entry count, see `_grow_sketch`
            self._sketch_capacity: float = capacity
        else:
            capacity = max(int(maxsize), 1)
            self._sketch_capacity = math.inf  # never more than maxsize keys
        # A small cache still sees many more keys than it holds (a loop of 1,000 keys through a
        # cache of 100): a sketch that narrow blurs their counts, and admission churns.
        self._sketch = FrequencySketch(max(capacity, _SKETCH_MIN))
        # The sketch's rows and mask, held here for the hot paths: replaced with the sketch.
        self._rows = self._sketch.rows
        self._mask = self._sketch.mask
        self._shift = self._sketch.shift
        self._set_periods(capacity)
        self._unaged = 0  # accesses counted since the last aging, up to the last sample
        # Invariant: 0 <= _window_max <= maxsize, and _protected_max is _PROTECTED_SHARE of
        # the rest; only `_resize_window` changes them.
        self._window_max = maxsize * _WINDOW_START
        self._main_max = maxsize - self._window_max if maxsize < math.inf else maxsize
        self._protected_max = self._main_max * _PROTECTED_SHARE
        # The victim that beat the last warm candidates, and how many in a row (_outlasted).
        self._champion: K | None = None
        self._wins = 0
        self._evicting = False  # set by the first eviction: from then on the cache is full
        self._full_sample = False  # whether the current sample began with the cache full
        self._hits = 0  # in the current sample
        self._misses = 0  # in the current sample
        self._window_hits = 0  # in the current sample: hits on keys in the window
        # The sampled accesses, the shadow LRU's hits and the cache's own misses among them
        # (see _set_periods), each halved at a sample's end: the last samples weigh most.
        self._shadow_sampled = 0
        self._shadow_hits = 0
        self._shadow_missed = 0
        # Of those, the ones only the shadow LRU hit, and the ones only this cache hit: their
        # difference over their square root says whether its lead is more than noise.
        self._shadow_only = 0
        self._own_only = 0
        self._sampled: list[int] = []  # this sample's sampled accesses, see _replay_shadow

    # ----------------------------------------------------------------- the mapping

    def __getitem__(self, key: K) -> V:
        try:
            value = self._data[key]
        except KeyError:
            return self.__missing__(key)
        # A hit: the key moves within (or up from) its region, and counts in the sketch
        # (FrequencySketch.increment, inlined: this is the hit path; so is replay_hits).
        protected = self._protected
        h = protected.get(key)
        if h is not None:
            protected.move_to_end(key)
        else:
            h = self._window.get(key)
            if h is not None:
                self._window.move_to_end(key)
                self._window_hits += 1
            else:
                h = self._promote(key)
        first, second = self._rows
        i = h & self._mask
        j = h >> self._shift
        a = first[i]
        b = second[j]
        if a <= b and a < _COUNTER_MAX:
            first[i] = a + 1
        if b <= a and b < _COUNTER_MAX:
            second[j] = b + 1
        if not j & self._shadow_mask:
            self._sampled.append(h)  # a sampled hit, for the shadow LRU (_end_sample)
        self._hits += 1
        return value

    def __setitem__(self, key: K, value: V) -> None:
        data = self._data
        if key in data:
            self._replace(key, value)
            return
        weights = self._weights
        if weights is None:
            # Cache.__setitem__ for unit weights, inlined: this is the miss path.
            weight: float = 1
            maxsize = self._maxsize
            if len(data) + 1 > maxsize:
                if maxsize < 1:
                    raise ValueError("value too large")
                window = self._window
                if (
                    window
                    and self._window_size + 1 > self._window_max
                    and self._probation_size + self._protected_size + 1 > self._main_max
                    and self._own_popitem
                    and "popitem" not in self.__dict__  # not wrapped (see hook_evictions)
                ):
                    # The eviction of a full cache, inlined: what popitem() does when its
                    # window's candidate must contest (one Python call less per miss).
                    if not self._evicting:
                        self._filled()
                    candidate, candidate_index = window.popitem(False)
                    probation = self._probation
                    region = probation or self._protected
                    first, second = self._rows
                    mask = self._mask
                    shift = self._shift
                    if region:
                        victim = next(iter(region))
                        victim_index = region[victim]
                        a = first[candidate_index & mask]
                        b = second[candidate_index >> shift]
                        candidate_freq = a if a < b else b
                        a = first[victim_index & mask]
                        b = second[victim_index >> shift]
                        admit = candidate_freq > (a if a < b else b)
                        if not admit and candidate_freq > _WARM:
                            # self._outlasted(victim), inlined.
                            if victim is not self._champion:
                                self._champion = victim
                                self._wins = 1
                            elif self._wins < _STREAK:
                                self._wins += 1
                            else:
                                self._champion = None
                                admit = True
                        if admit:
                            probation[candidate] = candidate_index
                            self._probation_size += 1
                            del region[victim]
                            del data[victim]
                            if region is probation:
                                self._probation_size -= 1
                            else:
                                self._protected_size -= 1
                        else:
                            del data[candidate]
                    else:
                        del data[candidate]
                    # The new key enters the window as below, where the candidate left: the
                    # window's size is as it was, and main has no room for a spill.
                    data[key] = value
                    h = hash((key, self._salt))
                    i = h & mask
                    j = (h >> 32) & mask
                    h = window[key] = i | j << shift
                    a = first[i]
                    b = second[j]
                    if a <= b and a < _COUNTER_MAX:
                        first[i] = a + 1
                    if b <= a and b < _COUNTER_MAX:
                        second[j] = b + 1
                    if not j & self._shadow_mask:
                        self._sampled.append(~h)  # a sampled miss
                    misses = self._misses + 1
                    self._misses = misses
                    if self._hits + misses >= self._sample_size:
                        self._end_sample()
                    return
                else:
                    # Any other eviction goes through self.popitem(), as in Cache.
                    self._incoming = 1
                    try:
                        while len(data) + 1 > maxsize:
                            self.popitem()
                    finally:
                        self._incoming = 0
            data[key] = value
        else:
            weight = self.getsizeof(value)
            self._incoming = weight
            try:
                _cache_setitem(self, key, value)
            finally:
                self._incoming = 0
            weights[key] = weight
        # _add(key, weight) and FrequencySketch.increment, inlined.
        h = hash((key, self._salt))
        mask = self._mask
        i = h & mask
        j = (h >> 32) & mask
        h = self._window[key] = i | j << self._shift  # FrequencySketch.index
        window_size = self._window_size + weight
        self._window_size = window_size
        first, second = self._rows
        a = first[i]
        b = second[j]
        if a <= b and a < _COUNTER_MAX:
            first[i] = a + 1
        if b <= a and b < _COUNTER_MAX:
            second[j] = b + 1
        if not j & self._shadow_mask:
            self._sampled.append(~h)  # a sampled miss
        if window_size > self._window_max:
            self._spill_window()
        misses = self._misses + 1
        self._misses = misses
        if self._hits + misses >= self._sample_size:
            self._end_sample()

    def __delitem__(self, key: K) -> None:
        weights = self._weights
        if weights is None:
            del self._data[key]  # unit weights: the size is the item count, see `currsize`
            weight: float = 1
        else:
            _cache_delitem(self, key)
            weight = weights.pop(key)
        if self._window.pop(key, None) is not None:
            self._window_size -= weight
        elif self._probation.pop(key, None) is not None:
            self._probation_size -= weight
        else:
            del self._protected[key]
            self._protected_size -= weight

    def popitem(self) -> tuple[K, V]:
        """Remove and return the entry the policy gives up: while the window is over its
        share, the loser of its candidate against main's victim; otherwise main's victim.
        """
        if not self._evicting:
            self._filled()
        data = self._data
        window = self._window
        probation = self._probation
        weights = self._weights
        while window and self._window_size + self._incoming > self._window_max:
            candidate, candidate_hash = window.popitem(False)
            weight = weights[candidate] if weights is not None else 1
            self._window_size -= weight
            if self._probation_size + self._protected_size + weight <= self._main_max:
                probation[candidate] = candidate_hash  # room in main: no contest
                self._probation_size += weight
                continue
            region = probation or self._protected
            if region:
                # The contest, inlined (this is the miss path): the candidate must be
                # estimated more frequent than the victim, main's least recent key.
                victim = next(iter(region))  # cheaper than a loop over items() in CPython
                victim_hash = region[victim]
                first, second = self._rows
                mask = self._mask
                shift = self._shift
                a = first[candidate_hash & mask]
                b = second[candidate_hash >> shift]
                candidate_freq = a if a < b else b
                a = first[victim_hash & mask]
                b = second[victim_hash >> shift]
                if candidate_freq > (a if a < b else b) or (
                    # A victim that keeps beating warm candidates goes in the end, so that
                    # keys colliding with it (by accident or by attack) cannot shut out
                    # every newcomer.
                    candidate_freq > _WARM and self._outlasted(victim)
                ):
                    probation[candidate] = candidate_hash
                    self._probation_size += weight
                    # _evict_from(region, victim), inlined.
                    del region[victim]
                    if weights is None:
                        value = data.pop(victim)
                        weight = 1
                    else:
                        value = data[victim]
                        _cache_delitem(self, victim)
                        weight = weights.pop(victim)
                    if region is probation:
                        self._probation_size -= weight
                    else:
                        self._protected_size -= weight
                    return victim, value
            # The candidate lost, or main is empty.
            if weights is None:
                return candidate, data.pop(candidate)
            value = data[candidate]
            _cache_delitem(self, candidate)
            del weights[candidate]
            return candidate, value
        for region in (probation, self._protected, window):
            for victim in region:
                return self._evict_from(region, victim)
        raise KeyError(f"{type(self).__name__} is empty") from None

    def clear(self) -> None:
        super().clear()
        if self._weights is not None:
            self._weights.clear()
        self._window.clear()
        self._probation.clear()
        self._protected.clear()
        self._window_size = self._probation_size = self._protected_size = 0
        self._reset_policy()

    @property
    def currsize(self) -> float:
        # With unit weights this class stores and drops items itself (Cache's __setitem__
        # and __delitem__ cost a call each on the miss path): the size is the item count.
        if self._weights is None:
            return len(self._data)
        return super().currsize

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._data!r}, maxsize={self.maxsize!r}, "
            f"currsize={self.currsize!r})"
        )

    def __copy__(self) -> TinyLFUCache[K, V]:
        twin = copy_cache(self)
        twin._data = twin._Cache__data  # type: ignore[attr-defined]
        if self._weights is not None:
            twin._weights = self._weights.copy()
        twin._window = self._window.copy()
        twin._probation = self._probation.copy()
        twin._protected = self._protected.copy()
        twin._sketch = self._sketch.copy()
        twin._rows = twin._sketch.rows
        twin._shadow = self._shadow.copy()
        twin._leaders = tuple(leader.copy() for leader in self._leaders)
        if self._leaders:
            twin._leader_sketch = self._leader_sketch.copy()
            twin._patterns = self._patterns.copy()
        twin._sampled = self._sampled.copy()
        return twin

    def replay_hits(self, keys: Iterable[K]) -> None:
        """Count each key as a hit, in order; keys no longer held are skipped. Every hit
        counts (frequency matters), unlike an LRU where only each key's last one does."""
        # __getitem__'s hit, inlined with the loop's invariants hoisted.
        data = self._data
        protected = self._protected
        window = self._window
        first, second = self._rows  # unchanged by a hit (only a sample's end ages the rows)
        mask = self._mask
        shift = self._shift
        shadow_mask = self._shadow_mask
        sampled = self._sampled
        counted = window_hits = 0
        for key in keys:
            if key not in data:
                continue
            h = protected.get(key)
            if h is not None:
                protected.move_to_end(key)
            else:
                h = window.get(key)
                if h is not None:
                    window.move_to_end(key)
                    window_hits += 1
                else:
                    h = self._promote(key)
            i = h & mask
            j = h >> shift
            a = first[i]
            b = second[j]
            if a <= b and a < _COUNTER_MAX:
                first[i] = a + 1
            if b <= a and b < _COUNTER_MAX:
                second[j] = b + 1
            if not j & shadow_mask:
                sampled.append(h)
            counted += 1
        self._hits += counted
        self._window_hits += window_hits

    # ----------------------------------------------------------------- introspection

    @property
    def window_maxsize(self) -> float:
        """The window's current share of maxsize (it moves as the policy adapts)."""
        return self._window_max

    def regions(self) -> tuple[list[K], list[K], list[K]]:
        """The keys of the window, probation and protected, each least recent first."""
        return list(self._window), list(self._probation), list(self._protected)

    def region_sizes(self) -> tuple[float, float, float]:
        """The total weight of the window, probation and protected."""
        return self._window_size, self._probation_size, self._protected_size

    def frequency(self, key: K) -> int:
        """The sketch's estimate of how often `key` was used recently (0..15)."""
        return self._sketch.estimate(hash((key, self._salt)))

    # ----------------------------------------------------------------- the policy

    def _add(self, key: K, weight: float) -> None:
        """A new key enters the window."""
        h = hash((key, self._salt))
        self._window[key] = self._sketch.index(h)
        self._window_size += weight
        self._sketch.increment(h)
        if self._window_size > self._window_max:
            self._spill_window()

    def _replace(self, key: K, value: V) -> None:
        """A new value for a held key: it counts as a use, and may weigh differently."""
        weights = self._weights
        if weights is None:
            self._data[key] = value  # as Cache.__setitem__ does: never evicts, same weight
            weight: float = 1
        else:
            weight = self.getsizeof(value)
            _cache_setitem(self, key, value)  # may evict, even this key
            if key not in weights:  # evicted to make room for its own new value
                weights[key] = weight
                self._add(key, weight)
                return
        delta = weight - weights[key] if weights is not None else 0
        if weights is not None:
            weights[key] = weight
        for region in (self._protected, self._window, self._probation):
            h = region.get(key)
            if h is not None:
                region.move_to_end(key)
                self._sketch.increment(hash((key, self._salt)))
                break
        if region is self._protected:
            self._protected_size += delta
        elif region is self._window:
            self._window_size += delta
        else:
            self._probation_size += delta

    def _outlasted(self, victim: K) -> bool:
        """A warm candidate lost to `victim`: whether that victim has now beaten `_STREAK`
        warm candidates in a row (it then loses this contest, and its streak ends)."""
        if victim is not self._champion:
            self._champion = victim
            self._wins = 1
        elif self._wins < _STREAK:
            self._wins += 1
        else:
            self._champion = None  # the next victim starts a streak of its own
            return True
        return False

    def _promote(self, key: K) -> int:
        """A hit on probation moves the key up to protected, which may push its least
        recent keys back down. Returns the key's packed sketch indexes."""
        h = self._probation.pop(key)
        weight = self._weights[key] if self._weights is not None else 1
        self._probation_size -= weight
        self._protected[key] = h
        self._protected_size += weight
        if self._protected_size > self._protected_max:
            self._demote()
        return h

    def _demote(self) -> None:
        protected = self._protected
        weights = self._weights
        while protected and self._protected_size > self._protected_max:
            key, h = protected.popitem(last=False)
            weight = weights[key] if weights is not None else 1
            self._protected_size -= weight
            self._probation[key] = h
            self._probation_size += weight

    def _spill_window(self) -> None:
        """Move the window's excess into main while main has room (no eviction needed).

        The window overflows like this while the cache fills up: the time to check that
        the sketch is still wide enough for the entry count (see also `_end_sample`).
        """
        if len(self._data) > self._sketch_capacity:
            self._grow_sketch()
        window = self._window
        weights = self._weights
        room = self._main_max - self._probation_size - self._protected_size
        while window and self._window_size > self._window_max:
            key = next(iter(window))
            weight = weights[key] if weights is not None else 1
            if weight > room:
                return
            room -= weight
            self._probation[key] = window.pop(key)
            self._window_size -= weight
            self._probation_size += weight

    def _evict_from(self, region: OrderedDict[K, int], key: K) -> tuple[K, V]:
        """Drop `key` from its region and from the items: an eviction."""
        del region[key]
        weights = self._weights
        if weights is None:
            value = self._data.pop(key)
            weight: float = 1
        else:
            value = self._data[key]
            _cache_delitem(self, key)
            weight = weights.pop(key)
        if region is self._probation:
            self._probation_size -= weight
        elif region is self._protected:
            self._protected_size -= weight
        else:
            self._window_size -= weight
        return key, value

    def _grow_sketch(self) -> None:
        # More keys than the sketch was sized for: collisions would blur the estimates. The
        # new sketch starts empty (what was counted is lost, as when Caffeine resizes).
        capacity = 2 * len(self._data)
        self._sketch = FrequencySketch(capacity)
        self._rows = self._sketch.rows
        self._mask = self._sketch.mask
        self._shift = self._sketch.shift
        self._sketch_capacity = capacity
        self._set_periods(capacity)
        self._sampled.clear()  # indexes of the old width
        # Each key's counter indexes depend on the width: index every key anew.
        index = self._sketch.index
        salt = self._salt
        for region in (self._window, self._probation, self._protected):
            region.update({key: index(hash((key, salt))) for key in region})

    def _set_periods(self, capacity: int) -> None:
        self._age_period = _AGE_FACTOR * capacity
        self._sample_size = min(max(_SAMPLE_FACTOR * capacity, _SAMPLE_MIN), _SAMPLE_MAX)
        # The shadow LRU samples the keys whose second sketch index is 0 modulo a power of
        # two, about capacity / _SHADOW_KEYS but at most 64, so that a sample of 20,000
        # accesses still feeds it a few hundred (all keys in a small cache; the first index's
        # low bits are less uniform for consecutive ints): salted, so no one can choose
        # which keys it sees. Its indexes depend on the sketch's width: it starts empty
        # with each sketch.
        rate = min(1 << (-(-capacity // _SHADOW_KEYS) - 1).bit_length(), _SHADOW_RATE_MAX)
        self._shadow_mask = rate - 1
        self._shadow_size = max(capacity // rate, 1)
        # The sampled keys' packed sketch indexes (never the keys), least recent first.
        self._shadow: OrderedDict[int, None] = OrderedDict()
        # The duel of window shares (see _replay_shadow): the leaders, and their shared
        # sketch, on the shadow LRU's sampled keys whose next bit is 0 too (1 in 128: the
        # budget's time and memory; at 1 in 16 they would take 8 times as much), with half
        # its entries; only with unit weights (the leaders count entries). Invariant: the
        # leaders have seen the same sampled accesses (those that `_leader_mask` lets
        # through) as the shadow LRU, and their sketch counted each once.
        self._leaders: tuple[_Leader, ...] = ()
        self._choice = -1  # the contestant whose share the window keeps (-1: none yet)
        size = self._shadow_size // _LEADER_SUBSAMPLE
        if (
            rate < _SHADOW_RATE_MAX
            or size < _LEADER_MIN
            or self._weights is not None
            or math.isinf(self._maxsize)
        ):
            return
        # The bits of a packed index (i | j << shift) that must be 0 for the leaders, above
        # the shadow LRU's own.
        self._leader_mask = (_LEADER_SUBSAMPLE - 1) << (self._shift + rate.bit_length() - 1)
        self._leaders = tuple(_Leader(size, share) for share in _LEADER_SHARES)
        self._leader_sketch = FrequencySketch(max(size, _SKETCH_MIN))
        # Aged as the cache's sketch would be at that size: at the first sample's end after
        # _AGE_FACTOR x size accesses.
        sample = min(max(_SAMPLE_FACTOR * size, _SAMPLE_MIN), _SAMPLE_MAX)
        self._leader_age_period = -(-_AGE_FACTOR * size // sample) * sample
        self._leader_unaged = 0
        # The sampled accesses since the leaders filled up, decayed, by which contestants hit
        # them: bit 0 the 1% leader, bit 1 the 20% one, bit 2 the shadow LRU.
        self._patterns = [0.0] * 8
        self._leaders_full = False
        self._duel_warming = _DUEL_WARM * size
        self._duel_fed = 0  # accesses counted since the last judgement (every `size` of them)
        self._duel_keep = math.exp(-size / max(_DUEL_HORIZON * size, _DUEL_HORIZON_MIN))

    def _replay_shadow(self) -> None:
        """Replay the sample's sampled accesses into the shadow LRU, and the leaders if any:
        each is a key's packed indexes, or their complement (`~h`, negative) for a miss of
        this cache. A batch costs the hot paths one `append` per sampled access."""
        shadow = self._shadow
        size = self._shadow_size
        leaders = self._leaders
        leader_mask = self._leader_mask if leaders else 0
        hits = missed = shadow_only = own_only = 0
        for h in self._sampled:
            if h < 0:
                h = ~h
                missed += 1
                if h in shadow:
                    shadow.move_to_end(h)
                    hits += 1
                    shadow_only += 1
                    if leaders and not h & leader_mask:
                        self._duel(h, 4)
                    continue
            elif h in shadow:
                shadow.move_to_end(h)
                hits += 1
                if leaders and not h & leader_mask:
                    self._duel(h, 4)
                continue
            else:
                own_only += 1
            shadow[h] = None
            if len(shadow) > size:
                shadow.popitem(False)
            if leaders and not h & leader_mask:
                self._duel(h, 0)
        self._shadow_sampled += len(self._sampled)
        self._shadow_hits += hits
        self._shadow_missed += missed
        self._shadow_only += shadow_only
        self._own_only += own_only
        self._sampled.clear()

    def _duel(self, h: int, pattern: int) -> None:
        """One sampled access `h` for the leaders (`pattern`: 4 if the shadow LRU hit it).

        Set dueling: the leaders, fixed at 1% and 20% of window, and the shadow LRU (an LRU is
        what the window tends to as it grows: it stands for 99%) see the same sampled keys.
        Counted once the leaders are full and have seen `_DUEL_WARM` x their size more (a
        young sketch makes W-TinyLFU lose to an LRU whatever the trace), and fading over at
        least `_DUEL_HORIZON_MIN` sampled accesses: a share needs many of them to show, and
        a wrong choice toward a larger window costs more than a right one gains (main's keys,
        handed to the window's LRU, are lost). So a choice comes only when a contestant's
        lead on the accesses only one of the two hit is `_DUEL_Z` standard errors of them,
        on `_DUEL_EVIDENCE` of them at least."""
        sketch = self._leader_sketch
        index = sketch.index(hash((h, self._salt)))
        one, two = self._leaders
        if one.access(h, index, sketch):
            pattern |= 1
        if two.access(h, index, sketch):
            pattern |= 2
        sketch.increment_at(index)
        self._leader_unaged += 1
        if self._leader_unaged >= self._leader_age_period:
            sketch.halve()
            self._leader_unaged = 0
        if not self._leaders_full:
            # The leaders fill up together (a miss adds to each): their hits say nothing yet.
            self._leaders_full = (
                len(two.window) + len(two.probation) + len(two.protected) >= two.size
            )
            if not self._leaders_full:
                return
        if self._duel_warming:
            # Just full, a leader's sketch knows little yet: the leaders that admit on it lose
            # to an LRU for a while whatever the trace wants.
            self._duel_warming -= 1
            return
        self._patterns[pattern] += 1
        self._duel_fed += 1
        if self._duel_fed >= two.size:
            self._duel_fed = 0
            self._judge()

    def _judge(self) -> None:
        """Choose the contestant that beats the chosen one (each other one, for a first
        choice) beyond noise, and let the counts fade."""
        patterns = self._patterns

        def only(i: int, j: int) -> float:
            """The (decayed) sampled accesses contestant i hit and j missed."""
            other = 7 ^ (1 << i) ^ (1 << j)  # the third contestant's bit
            return patterns[1 << i] + patterns[1 << i | other]

        def leads(i: int, j: int) -> bool:
            won = only(i, j)
            lost = only(j, i)
            return won - lost > _DUEL_Z * math.sqrt(won + lost) and won + lost >= _DUEL_EVIDENCE

        current = self._choice
        if current < 0:
            for i in range(3):
                if all(leads(i, j) for j in range(3) if j != i):
                    self._choice = i
                    break
        else:
            best = max(range(3), key=lambda i: only(i, current) - only(current, i))
            if best != current and leads(best, current):
                self._choice = best
        keep = self._duel_keep
        patterns[:] = [count * keep for count in patterns]

    def _filled(self) -> None:
        """The first eviction: the cache is full, and the first sample that can judge the
        window starts now (the accesses while it filled up say nothing about it)."""
        self._evicting = True
        self._full_sample = True
        self._hits = self._misses = self._window_hits = 0
        self._shadow_sampled = self._shadow_hits = self._shadow_missed = 0
        self._shadow_only = self._own_only = 0
        self._sampled.clear()

    def _end_sample(self) -> None:
        """Move the window on the sample's hits (see `_steer`); age the sketch if due."""
        accesses = self._hits + self._misses
        if len(self._data) > self._sketch_capacity:
            self._grow_sketch()
        self._unaged += accesses
        if self._unaged >= self._age_period:
            self._sketch.halve()
            self._unaged = 0
        hits = self._hits
        window_hits = self._window_hits
        self._hits = self._misses = self._window_hits = 0
        if not self._full_sample or math.isinf(self._maxsize):
            if self._leaders:
                # The leaders (and the shadow LRU's contents, not its counts: see _filled)
                # fill up as the cache does: they need to be full and warm to judge.
                self._replay_shadow()
            self._sampled.clear()
            return  # the cache is filling up (see _filled), or never full
        if self._weights is not None:  # the shadow LRU holds as many entries as the cache
            self._shadow_size = max(len(self._data) // (self._shadow_mask + 1), 1)
        self._replay_shadow()
        self._resize_window(self._steer(hits, window_hits))

    def _steer(self, hits: int, window_hits: int) -> float:
        """The window's next size, from a full sample's hits and the shadow LRU's counts.

        The window moves toward equal density: hits per unit of size in the window against
        those in main, both counted in the same sample, so a swing of the workload's hit
        rate (which moves both) is no reason to move. A step is 3% of maxsize per unit of
        their log ratio, at most 30%. Density alone rests where each region's share of the
        hits is its share of the space, which can leave the window too small where an LRU
        would do better: a shadow LRU on sampled keys says so (beyond noise), and then the
        window grows by twice its lead, at least 10% of maxsize. Once the duel of leaders
        has chosen a share (see `_duel`), the window keeps that share instead.
        """
        maxsize = self._maxsize
        window = self._window_max
        main = maxsize - window
        # Pseudo-hits spread by size: a sample with no hits at all leaves the window be.
        floor = 1 / maxsize
        error = math.log(
            (window_hits / window + floor) / ((hits - window_hits) / max(main, 1) + floor)
        )
        target = window + math.copysign(min(_MAX_STEP, abs(error) * _GAIN), error) * maxsize
        sampled = self._shadow_sampled
        behind = (self._shadow_hits - sampled + self._shadow_missed) / sampled if sampled else 0
        shadow_only = self._shadow_only
        own_only = self._own_only
        if behind > _BEHIND and shadow_only - own_only > _SIGNIFICANT * math.sqrt(
            shadow_only + own_only
        ):
            jump = min(max(_JUMP, _JUMP_GAIN * behind), _JUMP_MAX)
            target = max(target, window + jump * maxsize)
        if self._choice >= 0:  # the duel's choice (see _duel) holds
            target = (*_LEADER_SHARES, _LRU_SHARE)[self._choice] * maxsize
        self._shadow_sampled = sampled >> 1
        self._shadow_hits >>= 1
        self._shadow_missed >>= 1
        self._shadow_only = shadow_only >> 1
        self._own_only = own_only >> 1
        return target

    def _resize_window(self, window_max: float) -> None:
        maxsize = self._maxsize
        # Main keeps at least 1% (and 1 unit): with no main at all, its density (nothing
        # over nothing) could never tell the window to shrink again.
        most = max(maxsize - max(maxsize * _MAIN_MIN, 1), maxsize * _WINDOW_MIN)
        self._window_max = min(max(window_max, maxsize * _WINDOW_MIN), most)
        self._main_max = maxsize - self._window_max
        self._protected_max = self._main_max * _PROTECTED_SHARE
        self._demote()
        window = self._window
        probation = self._probation
        weights = self._weights
        # A larger window takes main's least recent keys as its most recent ones: they
        # will contest their way back like any candidate, never be evicted unheard.
        while probation and self._probation_size + self._protected_size > self._main_max:
            key, h = probation.popitem(False)
            weight = weights[key] if weights is not None else 1
            self._probation_size -= weight
            window[key] = h
            self._window_size += weight
        # A smaller window hands its least recent keys to probation; main, then over its
        # share, gives up its victims on the next evictions.
        while window and self._window_size > self._window_max:
            key, h = window.popitem(False)
            weight = weights[key] if weights is not None else 1
            self._window_size -= weight
            probation[key] = h
            self._probation_size += weight
