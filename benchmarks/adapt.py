"""Research harness for TinyLFU's window adaptation (issue 18): every trace at six cache sizes
over its useful range, at the quick (200k requests) or full length, against OPT, LRU, LFU and
theine, with a third of the trace families held out while tuning.

    python -m benchmarks.adapt baseline [--full]      # OPT/LRU/LFU/theine, cached in results/
    python -m benchmarks.adapt run VARIANT... [--full] # TinyLFU variants (see VARIANTS)
    python -m benchmarks.adapt run current --set _SAMPLE_MIN=2000  # a constant replaced
    python -m benchmarks.adapt detail VARIANT [--full] # per cell, misses flagged

The baselines need theine (the bench venv, `make bench`). Sizes: 1%, 2.5%, 5%, 10%, 25% and 50%
of the distinct keys in the replayed prefix (at least 16). "full" is the whole trace, capped at
1M requests (P3, P6, orm-busy, scarab: SOURCES.md says the first 1M suffice), and only the
traces longer than 200k requests are replayed again at full length (the others are whole in
the quick run); the synthetic traces are 200k requests long.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import traces
from .hitratio import lfu_replay
from .traces import (  # the trace catalogue, shared with the hitratio scenario
    HELD_OUT,
    cells,
    family_of,
)

RESULTS = Path(__file__).resolve().parent / "results"


def _replay(cache: Any, keys: list[int]) -> int:
    hits = 0
    for key in keys:
        if key in cache:
            cache[key]
            hits += 1
        else:
            cache[key] = None
    return hits


def baseline_path(full: bool) -> Path:
    return RESULTS / f"adapt-baseline-{'full' if full else 'quick'}.json"


def baseline(full: bool) -> None:
    import cachetools

    from .hitratio import _theine_replay

    path = baseline_path(full)
    done: dict[str, dict[str, float]] = json.loads(path.read_text()) if path.exists() else {}
    for name, keys, sizes in cells(full):
        for size in sizes:
            cell = f"{name}|{size}"
            if cell in done:
                continue
            n = len(keys)
            row = {"n": n, "opt": 100 * traces.opt_hits(keys, size) / n}
            row["lru"] = 100 * _replay(cachetools.LRUCache(size), keys) / n
            row["lfu"] = 100 * lfu_replay(keys, size) / n
            row["theine"] = 100 * _theine_replay(keys, size) / n
            done[cell] = row
            path.write_text(json.dumps(done, indent=0))
            print(cell, {k: round(v, 2) for k, v in row.items()}, flush=True)


# ----------------------------------------------------------------------------- variants

Factory = Callable[[int], Any]


def _variants() -> dict[str, Factory]:
    from . import adapt_variants

    return adapt_variants.VARIANTS


def evaluate(name: str, factory: Factory, full: bool, only: set[str] | None = None) -> None:
    base = json.loads(baseline_path(full).read_text())
    rows = []
    began = time.perf_counter()
    for trace, keys, sizes in cells(full):
        if only and trace not in only and family_of(trace) not in only:
            continue
        for size in sizes:
            b = base[f"{trace}|{size}"]
            cache = factory(size)
            hit = 100 * _replay(cache, keys) / len(keys)
            best = max(b["lru"], b["lfu"], b["theine"])
            share = getattr(cache, "window_maxsize", math.nan) / size
            rows.append(
                {
                    "trace": trace,
                    "size": size,
                    "family": family_of(trace),
                    "hit": hit,
                    "gap": b["opt"] - hit,
                    "theine_gap": b["opt"] - b["theine"],
                    "vs_best": hit - best,
                    "share": share,
                }
            )
    out = RESULTS / f"adapt-{name}-{'full' if full else 'quick'}.json"
    out.write_text(json.dumps(rows, indent=0))
    summarize(name, rows, time.perf_counter() - began)


def summarize(name: str, rows: list[dict[str, Any]], elapsed: float = 0.0) -> None:
    def part(rs: list[dict[str, Any]]) -> str:
        if not rs:
            return "-"
        worst = min(rs, key=lambda r: r["vs_best"])
        miss = sum(r["vs_best"] < -1 for r in rs)
        return (
            f"gap {statistics.mean(r['gap'] for r in rs):6.2f} "
            f"(theine {statistics.mean(r['theine_gap'] for r in rs):6.2f}) "
            f"miss {miss:2d}/{len(rs):3d} worst {worst['vs_best']:+6.2f} "
            f"{worst['trace']}@{worst['size']}"
        )

    tuned = [r for r in rows if r["family"] not in HELD_OUT]
    held = [r for r in rows if r["family"] in HELD_OUT]
    print(f"{name:28s} ALL  {part(rows)}  [{elapsed:.0f}s]")
    print(f"{'':28s} TUNE {part(tuned)}")
    print(f"{'':28s} HELD {part(held)}", flush=True)


def detail(name: str, full: bool) -> None:
    rows = json.loads((RESULTS / f"adapt-{name}-{'full' if full else 'quick'}.json").read_text())
    for r in rows:
        flag = "MISS" if r["vs_best"] < -1 else ""
        print(
            f"{r['trace']:18s} {r['size']:7d} hit {r['hit']:6.2f} gap {r['gap']:6.2f} "
            f"theine {r['theine_gap']:6.2f} vs_best {r['vs_best']:+6.2f} "
            f"share {r['share']:.3f} {flag}"
        )
    summarize(name, rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["baseline", "run", "detail"])
    parser.add_argument("variants", nargs="*")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--seed", type=int, default=1, help="the salt of `current` and round 7's")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        help="NAME=VALUE: replace a constant of cachekit._tinylfu (e.g. _MAIN_MIN=0.005)",
    )
    args = parser.parse_args()
    if args.set:
        from cachekit import _tinylfu

        for item in args.set:
            key, _, value = item.partition("=")
            if not hasattr(_tinylfu, key):
                sys.exit(f"cachekit._tinylfu has no {key}")
            setattr(_tinylfu, key, type(getattr(_tinylfu, key))(float(value)))
    if args.command == "baseline":
        baseline(args.full)
        return
    if args.command == "detail":
        for name in args.variants:
            detail(name, args.full)
        return
    variants = _variants()
    from . import adapt_variants

    adapt_variants.SEED = args.seed
    only = set(args.only.split(",")) if args.only else None
    for name in args.variants:
        if name not in variants and ":" in name:
            variants[name] = adapt_variants.parse(name)
        if name not in variants:
            sys.exit(f"unknown variant {name}; known: {', '.join(variants)}")
        label = name + "".join(f"+{item}" for item in args.set)
        if args.seed != 1:
            label += f"+seed{args.seed}"
        evaluate(label, variants[name], args.full, only)


if __name__ == "__main__":
    main()
