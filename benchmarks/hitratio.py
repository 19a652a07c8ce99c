"""Hit ratio: traces replayed through each eviction policy at several cache sizes, next to
Bélády's optimal (OPT, computed offline with next-use lookahead).

Policies: the ones `policy=` accepts (cachetools' lru, lfu, fifo, rr; cachekit's own
`tinylfu` when present) and theine's W-TinyLFU when it is installed. Each row gives the hit
percentage, OPT's, the gap in points, and the policy's own cost per access (the replay
loop, no asyncio). Run alone: python -m benchmarks.hitratio [--quick]

A second, smaller measurement (`cost`) gives each policy's cost per access as a ratio to
cachetools' `LRUCache` in the same repeat (policies interleaved, order rotating, garbage
collector off, median of the per-repeat ratios) and its memory per entry (tracemalloc).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import cachetools

from . import traces

Replay = Callable[[list[int], int], int]


#: The window share (in % of maxsize) each tinylfu replay ended with, by (trace length,
#: first key, capacity): the table's column for where the adaptation settled.
_SHARES: dict[tuple[int, int, int], float] = {}


def _cachetools_replay(factory: Callable[[int], Any]) -> Replay:
    def replay(keys: list[int], capacity: int) -> int:
        cache = factory(capacity)
        hits = 0
        for key in keys:
            if key in cache:
                cache[key]  # a read is a use: it moves the key in the policy's order
                hits += 1
            else:
                cache[key] = None
        share = getattr(cache, "window_maxsize", None)
        if share is not None and keys:
            _SHARES[len(keys), keys[0], capacity] = 100 * share / capacity
        return hits

    return replay


def lfu_replay(keys: list[int], capacity: int) -> int:
    """cachetools' LFUCache decisions (8.x's, which 5.x's match: the least used key goes, the
    earliest to reach that count), in O(1) per access: cachetools 5's LFUCache, which the
    benchmark environment has, scans every count on each eviction, too slow for the larger
    sizes. The cost rows still measure the real LFUCache."""
    count: dict[int, int] = {}
    buckets: dict[int, dict[int, None]] = {}
    hits = 0
    lowest = 0
    for key in keys:
        c = count.get(key)
        if c is not None:
            hits += 1
            bucket = buckets[c]
            del bucket[key]
            if not bucket:
                del buckets[c]
                if lowest == c:
                    lowest = c + 1
            count[key] = c + 1
            buckets.setdefault(c + 1, {})[key] = None
            continue
        if len(count) >= capacity:
            bucket = buckets[lowest]
            victim = next(iter(bucket))
            del bucket[victim]
            if not bucket:
                del buckets[lowest]
            del count[victim]
        count[key] = 1
        buckets.setdefault(1, {})[key] = None
        lowest = 1
    return hits


def _theine_replay(keys: list[int], capacity: int) -> int:
    from theine import Cache

    cache = Cache(capacity)
    get, put = cache.get, cache.set
    hits = 0
    for key in keys:
        if get(key)[1]:
            hits += 1
        else:
            put(key, None)
    return hits


def policies() -> tuple[dict[str, Replay], dict[str, str]]:
    """Replays by policy name, and the policies skipped here with the reason."""
    found: dict[str, Replay] = {
        "lru": _cachetools_replay(cachetools.LRUCache),
        "lfu": _cachetools_replay(cachetools.LFUCache),
        "fifo": _cachetools_replay(cachetools.FIFOCache),
        "rr": _cachetools_replay(cachetools.RRCache),
    }
    skipped: dict[str, str] = {}
    try:
        from cachekit import TinyLFUCache

        found["tinylfu"] = _cachetools_replay(TinyLFUCache)
    except ImportError:
        skipped["tinylfu"] = "cachekit has no TinyLFUCache yet"
    try:
        import theine  # noqa: F401

        found["theine"] = _theine_replay
    except ImportError as exc:
        skipped["theine"] = f"not importable: {exc}"
    return found, skipped


def workload(quick: bool) -> tuple[list[tuple[traces.Trace, list[int]]], dict[str, str]]:
    """(trace, cache sizes) pairs, and the traces skipped with the reason.

    Full: every trace of the catalogue (benchmarks/traces.py), its first 200,000 requests,
    at six sizes over its useful range (1%, 2.5%, 5%, 10%, 25% and 50% of its distinct keys).
    Quick: a few traces, 30,000 requests, one size each."""
    if not quick:
        chosen_full: list[tuple[traces.Trace, list[int]]] = []
        skipped_full: dict[str, str] = {}
        for names in traces.FAMILIES.values():
            for name in names:
                try:
                    keys = traces.load(name, traces.QUICK)
                except traces.TraceUnavailable as exc:
                    skipped_full[name] = str(exc)
                    continue
                chosen_full.append((traces.Trace(name, keys), traces.sizes_for(keys)))
        return chosen_full, skipped_full
    length = 30_000
    chosen: list[tuple[traces.Trace, list[int]]] = []
    for alpha in (0.7, 0.9, 1.1):
        chosen.append((traces.zipf(alpha, 50_000, length, seed=7), [500, 2_500]))
    chosen.append((traces.scan_polluted(20_000, length, seed=7), [1_000, 4_000]))
    chosen.append((traces.loop(1_500, length // 2), [1_000]))
    chosen.append((traces.shifting(20_000, length, seed=7), [500, 2_000]))
    chosen = [(trace, sizes[:1]) for trace, sizes in chosen]
    real = ["lirs/loop", "lirs/sprite", "arc/OLTP", "cache2k/web07"]
    skipped: dict[str, str] = {}
    for name in real:
        try:
            trace = traces.real(name, length)
        except traces.TraceUnavailable as exc:
            skipped[name] = str(exc)
            continue
        distinct = len(set(trace.keys))
        sizes = sorted({max(16, distinct // 100), max(32, distinct // 20)})
        chosen.append((trace, sizes[1:2]))
    return chosen, skipped


def run(*, quick: bool) -> list[dict[str, object]]:
    """One row per (trace, size, policy), OPT included as its own reference."""
    replays, skipped_policies = policies()
    chosen, skipped_traces = workload(quick)
    rows: list[dict[str, object]] = []
    for trace, sizes in chosen:
        for size in sizes:
            opt = 100 * traces.opt_hits(trace.keys, size) / len(trace.keys)
            for name, replay in replays.items():
                if name == "lfu":
                    replay = lfu_replay
                began = time.perf_counter()
                hits = replay(trace.keys, size)
                elapsed = time.perf_counter() - began
                pct = 100 * hits / len(trace.keys)
                row: dict[str, object] = {
                    "trace": trace.name,
                    "size": size,
                    "policy": name,
                    "hit_pct": round(pct, 2),
                    "opt_pct": round(opt, 2),
                    "gap_pts": round(opt - pct, 2),
                    "ns_per_access": round(1e9 * elapsed / len(trace.keys), 1),
                }
                share = _SHARES.pop((len(trace.keys), trace.keys[0], size), None)
                if name == "tinylfu" and share is not None:
                    row["window_pct"] = round(share, 1)
                rows.append(row)
    rows += cost(quick=quick)
    for name, reason in {**skipped_policies, **skipped_traces}.items():
        rows.append({"trace": name, "policy": "skipped", "note": reason})
    return rows


def cost(*, quick: bool) -> list[dict[str, object]]:
    """One row per policy: ns per access and its ratio to `lru` on one Zipf(0.9) trace at
    size 500, and bytes per entry of a full cache of small int keys and None values."""
    replays, _ = policies()
    keys = traces.zipf(0.9, 50_000, 20_000 if quick else 100_000, seed=7).keys
    names = list(replays)
    elapsed: dict[str, list[float]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(5 if quick else 9):
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in order:
            gc.disable()
            try:
                began = time.perf_counter()
                replays[name](keys, 500)
                elapsed[name].append(time.perf_counter() - began)
            finally:
                gc.enable()
        for name in names:
            ratios[name].append(elapsed[name][-1] / elapsed["lru"][-1])
    entries = 10_000 if quick else 100_000
    factories = _cachetools_factories()
    rows: list[dict[str, object]] = []
    for name in names:
        rows.append(
            {
                "trace": "cost: zipf-0.9 @ 500",
                "policy": name,
                "ns_per_access": round(1e9 * statistics.median(elapsed[name]) / len(keys)),
                "x_lru": round(statistics.median(ratios[name]), 2),
                "bytes_per_entry": (
                    round(_bytes_per_entry(factories[name], entries)) if name in factories else "-"
                ),
            }
        )
    return rows


def _cachetools_factories() -> dict[str, Callable[[int], Any]]:
    found: dict[str, Callable[[int], Any]] = {
        "lru": cachetools.LRUCache,
        "lfu": cachetools.LFUCache,
        "fifo": cachetools.FIFOCache,
        "rr": cachetools.RRCache,
    }
    try:
        from cachekit import TinyLFUCache

        found["tinylfu"] = TinyLFUCache
    except ImportError:
        pass
    return found


def _bytes_per_entry(factory: Callable[[int], Any], entries: int) -> float:
    """Memory a cache allocates for `entries` keys it holds (the keys themselves excluded)."""
    keys = list(range(1_000, 1_000 + entries))  # ints above the small-int cache: real objects
    gc.collect()
    tracemalloc.start()
    try:
        cache = factory(entries)
        for key in keys:
            cache[key] = None
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(cache) == entries
    return used / entries


def cost_table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| policy | ns per access | x LRUCache | bytes per entry |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['policy']} | {r['ns_per_access']} | {r['x_lru']} | {r['bytes_per_entry']} |"
        for r in rows
        if "x_lru" in r
    ]
    return "\n".join(lines)


def table(rows: list[dict[str, object]]) -> str:
    """A markdown table: hit % by policy per (trace, size), OPT and each policy's gap."""
    measured = [r for r in rows if "hit_pct" in r]
    names = list(dict.fromkeys(str(r["policy"]) for r in measured))
    windows = any("window_pct" in r for r in measured)
    lines = [
        "| trace | size | OPT % | "
        + " | ".join(f"{n} % (gap)" for n in names)
        + (" | tinylfu window % |" if windows else " |"),
        "|---|---|---|" + "---|" * (len(names) + windows),
    ]
    groups: dict[tuple[object, object], dict[str, dict[str, object]]] = {}
    for r in measured:
        groups.setdefault((r["trace"], r["size"]), {})[str(r["policy"])] = r
    for (trace, size), by_policy in groups.items():
        opt = next(iter(by_policy.values()))["opt_pct"]
        cells = [
            f"{by_policy[n]['hit_pct']} ({by_policy[n]['gap_pts']})" if n in by_policy else "-"
            for n in names
        ]
        if windows:
            cells.append(str(by_policy.get("tinylfu", {}).get("window_pct", "-")))
        lines.append(f"| {trace} | {size} | {opt} | " + " | ".join(cells) + " |")
    gaps = {n: [float(str(r["gap_pts"])) for r in measured if r["policy"] == n] for n in names}
    mean = " | ".join(f"{sum(g) / len(g):.2f}" for g in gaps.values())
    lines.append(f"| **mean gap to OPT (pts)** | | | {mean} |" + (" |" if windows else ""))
    for r in rows:
        if r.get("policy") == "skipped":
            lines.append(f"\nskipped: {r['trace']}: {r['note']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    began = time.perf_counter()
    rows = run(quick=quick)
    print(table(rows))
    print("\nThe policy's own cost, Zipf(0.9) at size 500 (ratios: median of interleaved")
    print("repeats; bytes: a full cache of 10,000 (quick) or 100,000 entries):\n")
    print(cost_table(rows))
    print(f"\n({time.perf_counter() - began:.1f} s)")


if __name__ == "__main__":
    main()
