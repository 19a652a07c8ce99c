"""Access traces for the hit-ratio benchmark: real ones from ../shared/traces, synthetic ones
from a seed, and Bélády's optimal hit count (OPT) for any of them.

Real traces (formats in shared/traces/SOURCES.md) are read where present and skipped with a
reason where not (a missing file, or no `zstandard` module for the ARC ones). The folder is
`../shared/traces` beside the repository, or the path in the CACHEKIT_TRACES variable.
"""

from __future__ import annotations

import gzip
import heapq
import io
import lzma
import os
import random
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import accumulate, islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def traces_dir() -> Path:
    return Path(os.environ.get("CACHEKIT_TRACES", ROOT.parent / "shared" / "traces"))


@dataclass(frozen=True)
class Trace:
    name: str
    keys: list[int]


class TraceUnavailable(Exception):
    """A trace that cannot be read here; the message says why."""


# ----------------------------------------------------------------------------- real traces


def _lirs(path: Path) -> Iterator[int]:
    with gzip.open(path, "rt") as lines:
        for line in lines:
            line = line.strip()
            if line and line != "*":
                yield int(line)


def _arc(path: Path) -> Iterator[int]:
    try:
        import zstandard
    except ImportError:
        raise TraceUnavailable("needs the zstandard module (pip install zstandard)") from None
    with path.open("rb") as raw:
        text = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(raw))
        for line in text:
            fields = line.split()
            if len(fields) >= 2:
                start, count = int(fields[0]), int(fields[1])
                yield from range(start, start + count)


def _binary(path: Path, fmt: str) -> Iterator[int]:
    size = struct.calcsize(fmt)
    with lzma.open(path, "rb") as stream:
        while chunk := stream.read(size * 65536):
            yield from (
                value for (value,) in struct.iter_unpack(fmt, chunk[: len(chunk) // size * size])
            )


_REAL: dict[str, tuple[str, Callable[[Path], Iterator[int]]]] = {
    "lirs/loop": ("lirs/loop.trace.gz", _lirs),
    "lirs/sprite": ("lirs/sprite.trace.gz", _lirs),
    "lirs/multi2": ("lirs/multi2.trace.gz", _lirs),
    "lirs/2_pools": ("lirs/2_pools.trace.gz", _lirs),
    "lirs/gli": ("lirs/gli.trace.gz", _lirs),
    "lirs/cpp": ("lirs/cpp.trace.gz", _lirs),
    "lirs/cs": ("lirs/cs.trace.gz", _lirs),
    "lirs/ps": ("lirs/ps.trace.gz", _lirs),
    "lirs/multi1": ("lirs/multi1.trace.gz", _lirs),
    "lirs/multi3": ("lirs/multi3.trace.gz", _lirs),
    "lirs/zigzag": ("lirs/zigzag.trace.gz", _lirs),
    "lirs/scan": ("lirs/scan.trace.gz", _lirs),
    "arc/OLTP": ("arc/OLTP.lis.zst", _arc),
    "arc/P3": ("arc/P3.lis.zst", _arc),
    "arc/P6": ("arc/P6.lis.zst", _arc),
    "cache2k/web07": ("cache2k/web07.trace.xz", lambda p: _binary(p, ">i")),
    "cache2k/web12": ("cache2k/web12.trace.xz", lambda p: _binary(p, ">i")),
    "cache2k/orm-busy": ("cache2k/orm-busy.trace.xz", lambda p: _binary(p, ">i")),
    "scarab/recs": ("scarab/scarab-recs.trace.xz", lambda p: _binary(p, ">q")),
}


def real(name: str, limit: int) -> Trace:
    """The first `limit` requests of a real trace; TraceUnavailable if it cannot be read."""
    relative, reader = _REAL[name]
    path = traces_dir() / relative
    if not path.exists():
        raise TraceUnavailable(f"{path} not found")
    return Trace(name, list(islice(reader(path), limit)))


def real_names() -> list[str]:
    return list(_REAL)


# ----------------------------------------------------------------------------- synthetic


def zipf(alpha: float, keys: int, length: int, seed: int) -> Trace:
    rng = random.Random(seed)
    weights = list(accumulate(1 / (rank + 1) ** alpha for rank in range(keys)))
    ranks = rng.choices(range(keys), cum_weights=weights, k=length)
    labels = list(range(keys))
    rng.shuffle(labels)  # popularity must not follow key order
    return Trace(f"zipf-{alpha}", [labels[r] for r in ranks])


def scan_polluted(keys: int, length: int, seed: int) -> Trace:
    """Zipf 0.9 traffic with a one-off sequential scan of never-repeated keys every so often."""
    base = zipf(0.9, keys, length, seed).keys
    out: list[int] = []
    scan_key = 10 * keys
    for i, key in enumerate(base):
        out.append(key)
        if i % 5000 == 4999:
            out.extend(range(scan_key, scan_key + keys // 4))
            scan_key += keys // 4
    return Trace("scan-polluted", out[:length])


def loop(period: int, length: int) -> Trace:
    """A loop over `period` keys: LRU's worst case when the cache is smaller than the loop."""
    return Trace(f"loop-{period}", [i % period for i in range(length)])


def shifting(keys: int, length: int, seed: int, phases: int = 4) -> Trace:
    """Zipf 1.0 whose popular keys change completely a few times."""
    out: list[int] = []
    for phase in range(phases):
        part = zipf(1.0, keys, length // phases, seed + phase).keys
        out.extend(key + phase * keys for key in part)
    return Trace("shifting", out)


# ----------------------------------------------------------------------------- OPT


def opt_hits(keys: list[int], capacity: int) -> int:
    """Hits of Bélády's optimal policy: on a miss with a full cache, evict the key whose next
    use is farthest away. Next uses are computed in one backward pass; the cache is a max-heap
    on next use with lazy deletion, so the whole run is O(n log capacity)."""
    never = len(keys)
    next_use = [never] * len(keys)
    last: dict[int, int] = {}
    for i in range(len(keys) - 1, -1, -1):
        next_use[i] = last.get(keys[i], never)
        last[keys[i]] = i
    cached: dict[int, int] = {}  # key -> its current next use
    heap: list[tuple[int, int]] = []  # (-next use, key), possibly stale
    hits = 0
    for i, key in enumerate(keys):
        upcoming = next_use[i]
        if key in cached:
            hits += 1
        elif len(cached) >= capacity:
            while True:
                negative, victim = heapq.heappop(heap)
                if cached.get(victim) == -negative:
                    break
            if -negative < upcoming:  # the newcomer is needed later than everything held:
                heapq.heappush(heap, (negative, victim))  # keep the cache, skip admitting it
                continue
            del cached[victim]
        cached[key] = upcoming
        heapq.heappush(heap, (-upcoming, key))
    return hits


# ---------------------------------------------------------------------- the catalogue
# Every trace at six cache sizes, for the hitratio scenario and benchmarks/adapt.py.

QUICK = 200_000
FULL = 1_000_000
FRACTIONS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5)

# Trace families. HELD_OUT is fixed before any tuning: a third of the families (4 of 12),
# replayed only to report, never looked at to choose a constant.
FAMILIES: dict[str, list[str]] = {
    "zipf": ["zipf-0.7", "zipf-0.9", "zipf-1.1"],
    "scan": ["scan-polluted"],
    "loop": ["loop-1500", "lirs/loop"],
    "lirs-synthetic": ["lirs/zigzag", "lirs/scan"],
    "shifting": ["shifting"],
    "lirs-app": ["lirs/sprite", "lirs/gli", "lirs/cpp", "lirs/cs", "lirs/ps"],
    "lirs-pools": ["lirs/2_pools"],
    "orm": ["cache2k/orm-busy"],
    "arc": ["arc/OLTP", "arc/P3", "arc/P6"],
    "web": ["cache2k/web07", "cache2k/web12"],
    "lirs-multi": ["lirs/multi1", "lirs/multi2", "lirs/multi3"],
    "scarab": ["scarab/recs"],
}
HELD_OUT = {"arc", "web", "lirs-multi", "scarab"}


SYNTHETIC = {"zipf-0.7", "zipf-0.9", "zipf-1.1", "scan-polluted", "loop-1500", "shifting"}


def family_of(name: str) -> str:
    return next(f for f, names in FAMILIES.items() if name in names)


def load(name: str, length: int) -> list[int]:
    if name.startswith("zipf-"):
        return zipf(float(name[5:]), 50_000, length, seed=7).keys
    if name == "scan-polluted":
        return scan_polluted(20_000, length, seed=7).keys
    if name == "loop-1500":
        return loop(1_500, length).keys
    if name == "shifting":
        return shifting(20_000, length, seed=7).keys
    return real(name, length).keys


def sizes_for(keys: list[int]) -> list[int]:
    distinct = len(set(keys))
    return sorted({max(16, int(distinct * f)) for f in FRACTIONS})


_CELLS: dict[bool, list[tuple[str, list[int], list[int]]]] = {}


def cells(full: bool) -> list[tuple[str, list[int], list[int]]]:
    if full in _CELLS:
        return _CELLS[full]
    length = FULL if full else QUICK
    out = []
    for names in FAMILIES.values():
        for name in names:
            if full and name in SYNTHETIC:
                continue  # generated: 200k requests is their length
            keys = load(name, length)
            if full and len(keys) <= QUICK:
                continue  # the whole trace is in the quick run already
            out.append((name, keys, sizes_for(keys)))
    _CELLS[full] = out
    return out
