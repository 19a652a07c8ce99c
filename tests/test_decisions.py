"""TinyLFUCache decides the same, byte for byte, under every supported cachetools version.

cachekit keeps TinyLFU's regions beside cachetools' `Cache` and lets `Cache` store the items
and (with `getsizeof`) their sizes and call `popitem()`; how and when it does that changed
between cachetools 5.3 and 8. This test replays fixed traces through the unit-weight path
(which evicts inline) and the weighted one (which goes through `Cache.__setitem__` and
`popitem`), and compares a digest of every hit, miss, size and window share with a constant.
Every nox session runs it: the suite on the newest cachetools and `lowest` on 5.3.x.

The traces come from a fixed linear congruential generator (not `random`, whose derived
methods may change between Python versions) and use int keys, whose hashes are the same in
every process. When the policy changes on purpose, the constant changes with it, and the
commit says why.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import cachetools

from cachekit import TinyLFUCache

#: sha256 of every decision below; see the module docstring before changing it.
EXPECTED = "81bb34969dbfca3811d396932424808c927c7f556a68e630c1440c09cddc1fd2"


def draws(seed: int) -> Iterator[int]:
    """31-bit draws from a 64-bit linear congruential generator (Knuth's MMIX constants)."""
    state = seed
    while True:
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        yield state >> 33


def mixed_trace(length: int, seed: int) -> list[int]:
    """Phases of a skewed popularity whose hot keys change, a loop longer than the caches,
    and a zigzag (recency): each moves the window one way or the other."""
    out: list[int] = []
    rng = draws(seed)
    phase = 0
    while len(out) < length:
        kind = phase % 4
        if kind in (0, 2):  # skewed: key ~ 5,000 * u**4, new keys each time
            for _ in range(6_000):
                u = next(rng) / (1 << 31)
                out.append(10_000 * phase + int(5_000 * u**4))
        elif kind == 1:  # a loop of 1,500 keys, 4 times
            out.extend(list(range(100_000, 101_500)) * 4)
        else:  # a zigzag over 800 keys, 5 sweeps each way
            sweep = list(range(200_000, 200_800))
            out.extend((sweep + sweep[::-1]) * 5)
        phase += 1
    return out[:length]


def decisions(cache: TinyLFUCache[int, int], keys: list[int]) -> bytes:
    record = bytearray()
    for n, key in enumerate(keys, 1):
        if key in cache:
            cache[key]
            record += b"h"
        else:
            cache[key] = key
            record += b"m"
        if n % 1_000 == 0:
            record += repr((cache.currsize, cache.window_maxsize, cache.region_sizes())).encode()
    record += repr(cache.regions()).encode()
    return bytes(record)


def digest() -> str:
    keys = mixed_trace(60_000, seed=18)
    h = hashlib.sha256()
    for maxsize in (64, 700, 3_000):
        h.update(decisions(TinyLFUCache(maxsize, seed=5), keys))
    # From 2,048 entries on the duel's leaders run; a longer trace lets them choose a share.
    h.update(decisions(TinyLFUCache(2_100, seed=5), mixed_trace(300_000, seed=18)))
    weighted: TinyLFUCache[int, int] = TinyLFUCache(
        2_000, getsizeof=lambda value: 1 + value % 4, seed=5
    )
    h.update(decisions(weighted, keys[:30_000]))
    return h.hexdigest()


def test_tinylfu_decides_the_same_under_every_cachetools_version() -> None:
    assert digest() == EXPECTED, f"cachetools {cachetools.__version__}"


def test_the_traces_exercise_what_the_digest_is_for() -> None:
    # The window must move both ways and the weighted cache must evict, or the digest would
    # not cover the paths whose cachetools calls differ between versions.
    keys = mixed_trace(60_000, seed=18)
    cache: TinyLFUCache[int, int] = TinyLFUCache(700, seed=5)
    shares = set()
    for n, key in enumerate(keys, 1):
        if key in cache:
            cache[key]
        else:
            cache[key] = key
        if n % 1_000 == 0:
            shares.add(cache.window_maxsize)
    assert min(shares) <= 0.02 * 700 and max(shares) >= 0.5 * 700
    weighted: TinyLFUCache[int, int] = TinyLFUCache(
        2_000, getsizeof=lambda value: 1 + value % 4, seed=5
    )
    decisions(weighted, keys[:30_000])
    assert weighted.currsize <= 2_000 < len(set(keys[:30_000]))
    # And the duel must choose a share (see TinyLFUCache._duel), or its code is not covered.
    dueling: TinyLFUCache[int, int] = TinyLFUCache(2_100, seed=5)
    decisions(dueling, mixed_trace(300_000, seed=18))
    assert dueling._leaders and dueling._choice >= 0
