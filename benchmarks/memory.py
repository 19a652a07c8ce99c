"""Scenario 4, memory: bytes per entry with 100,000 entries held, with and without ttl.

Each (system, ttl) runs in its own subprocess so that one library's arenas, import-time
allocations and background threads never blur another's figure. In the child:
  1. RSS: build the function (maxsize = entries), warm it with one call, read the resident set
     size, fill it with `entries` distinct int keys, collect garbage, read RSS again.
  2. tracemalloc: start tracing, build a second function, warm it, note the traced size, fill
     it the same way, collect garbage, note the traced size again.
bytes/entry = growth / entries. Keys and values (ints 0..entries, the loader returns x + 1)
are counted in every system, the `dict` memo included: compare systems through "x dict".
Quick mode holds 10,000 entries.

Target (issue 3): cachekit at most 300 bytes per entry with ttl (tracemalloc).

Run one child by hand: python -m benchmarks.memory SYSTEM TTL|none ENTRIES
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .adapters import Options, all_adapters
from .common import Context, Result, Target, skipped_rows

TARGET = 300.0


def _rss() -> int:
    statm = Path("/proc/self/statm")
    if statm.exists():
        return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # peak, in KiB on Linux


async def _fill(system_name: str, ttl: float | None, entries: int) -> dict[str, float]:
    system = next(a for a in all_adapters() if a.name == system_name)
    if not system.probe():
        raise SystemExit(f"skipped: {system.skipped}")

    async def load(x: int) -> int:
        return x + 1

    options = Options(maxsize=entries, ttl=ttl)
    fn, _ = system.build(load, options)
    await fn(-1)
    gc.collect()
    before = _rss()
    gc.disable()  # the fill measures memory, not time: no collections needed until the end
    for key in range(entries):
        await fn(key)
    gc.enable()
    gc.collect()
    rss = (_rss() - before) / entries

    tracemalloc.start()
    fn2, _ = system.build(load, options)
    await fn2(-1)
    gc.collect()
    traced_before = tracemalloc.get_traced_memory()[0]
    gc.disable()
    for key in range(entries):
        await fn2(key)
    gc.enable()
    gc.collect()
    traced = (tracemalloc.get_traced_memory()[0] - traced_before) / entries
    tracemalloc.stop()
    # Both functions stay referenced until here, so nothing measured was freed early.
    del fn, fn2
    return {"tracemalloc": traced, "rss": rss}


def _child(system: str, ttl: float | None, entries: int) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        system,
        "none" if ttl is None else str(ttl),
        str(entries),
    ]
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(command, capture_output=True, text=True, cwd=root, timeout=300)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1][:160]
        return {"error": reason}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _jobs(ctx: Context) -> list[tuple[str, float | None]]:
    # bare holds nothing; aiocache-stampede stores into the same SimpleMemoryCache as aiocache.
    systems = [s for s in ctx.systems if s.name not in ("bare", "aiocache-stampede")]
    ttls: list[float | None] = [60.0, None]
    # Without a ttl only for the floor and cachekit: the peers' fills are slow, and the full
    # mode has to fit in ten minutes.
    return [(s.name, ttl) for ttl in ttls for s in systems if ttl or s.name in ("dict", "cachekit")]


def steps(ctx: Context) -> int:
    """The progress steps run() takes: one per measuring subprocess."""
    return len(_jobs(ctx))


def run(ctx: Context) -> Result:
    entries = 10_000 if ctx.quick else 100_000
    systems = [s for s in ctx.systems if s.name not in ("bare", "aiocache-stampede")]
    ttls: list[float | None] = [60.0, None]
    jobs = _jobs(ctx)
    measured: dict[tuple[str, float | None], dict[str, Any]] = {}

    def one(job: tuple[str, float | None]) -> None:
        measured[job] = _child(job[0], job[1], entries)
        ctx.progress.step(f"memory {job[0]} ttl={job[1]}")

    # Two children at a time: each measures only its own memory, so they do not interfere.
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(one, jobs))

    rows: list[dict[str, Any]] = []
    for ttl in ttls:
        floor = measured.get(("dict", None), {}).get("tracemalloc", float("nan"))
        for system in systems:
            if (system.name, ttl) not in measured:
                continue
            m = measured[(system.name, ttl)]
            if "error" in m:
                rows.append({"system": system.name, "ttl": ttl, "note": f"failed: {m['error']}"})
                continue
            note = "" if system.bounded else "unbounded store"
            if system.name == "dict" and ttl is not None:
                note = "d.get(x) memo ignores ttl"
            rows.append(
                {
                    "system": system.name,
                    "ttl": ttl,
                    "B/entry (tracemalloc)": m["tracemalloc"],
                    "x dict": m["tracemalloc"] / floor if floor == floor and floor > 0 else None,
                    "B/entry (RSS)": m["rss"],
                    "note": note,
                }
            )
    rows.extend(skipped_rows(ctx))
    return Result(
        "memory",
        f"Memory: bytes per entry with {entries:,} entries held (maxsize {entries:,})",
        rows,
        notes=[
            "One subprocess per system and ttl. x dict compares tracemalloc figures with the "
            "dict memo's (no ttl). RSS includes allocator slack and is coarser.",
            "Every figure counts the int key and the int value too (~56 B in CPython).",
            "aiocache-stampede is not run: it stores into the same SimpleMemoryCache as aiocache.",
            "cachebox and theine keep their tables in Rust: tracemalloc does not see that "
            "memory, so read their RSS column.",
        ],
        targets=[_target(rows)],
    )


def _target(rows: list[dict[str, Any]]) -> Target:
    name = "memory, ttl=60"
    want = f"<= {TARGET:.0f} B/entry (tracemalloc)"
    ck = next(
        (r for r in rows if r["system"] == "cachekit" and r.get("ttl") == 60.0),
        None,
    )
    if ck is None or "B/entry (tracemalloc)" not in ck:
        return Target(name, want, "cachekit not measured", None)
    value = f"{ck['B/entry (tracemalloc)']:.0f} B/entry (RSS {ck['B/entry (RSS)']:.0f})"
    return Target(name, want, value, ck["B/entry (tracemalloc)"] <= TARGET)


def _main(argv: list[str]) -> int:
    system, ttl_text, entries = argv
    ttl = None if ttl_text == "none" else float(ttl_text)
    figures = asyncio.run(_fill(system, ttl, int(entries)))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
