"""The ceiling of TinyLFU's window lever (issue 18, round 6): every cell of benchmarks/adapt.py
replayed with the window's share fixed for the whole trace, at each share of a grid
(adapt_variants.CEILING_SHARES, 0 to 99%), everything else as shipped (`FixedShare`). A cell
that even its best fixed share misses by more than a point (against the best of LRU, LFU and
theine) is out of reach of any window that holds still; `oracle` then replays it with a
window that may change at every segment of the trace, greedily (each segment is replayed from
the same state at every share, and the best one's state goes on), which is a lower bound of
what a moving window could do there.

    python -m benchmarks.adapt_ceiling grid [--full] [--shares 0,0.5] [--missing]  # resumable
    python -m benchmarks.adapt_ceiling report [--full]    # per cell: best share, vs best
    python -m benchmarks.adapt_ceiling subsets [--full]   # summary, grid and smaller sets
    python -m benchmarks.adapt_ceiling oracle [--full] [--segment N] [--below X]
    python -m benchmarks.adapt_ceiling seeds 'arc/P3|86254' --full --shares 0.01,0.02
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
from typing import Any

from .adapt import RESULTS, _replay, baseline_path
from .adapt_variants import CEILING_SHARES, FixedShare
from .traces import HELD_OUT, cells, family_of


def _path(kind: str, full: bool) -> Any:
    return RESULTS / f"adapt-ceiling-{kind}-{'full' if full else 'quick'}.json"


def _best(row: dict[str, float]) -> float:
    return max(v for k, v in row.items() if k != "slru")


def grid(full: bool, shares: tuple[float, ...], missing: bool) -> None:
    """`missing`: only the cells whose best share so far misses the best of LRU, LFU and
    theine by more than a point (a coarse grid first, then the rest where it matters)."""
    path = _path("grid", full)
    done: dict[str, dict[str, float]] = json.loads(path.read_text()) if path.exists() else {}
    base = json.loads(baseline_path(full).read_text()) if missing else {}
    for trace, keys, sizes in cells(full):
        for size in sizes:
            cell = f"{trace}|{size}"
            row = done.setdefault(cell, {})
            if missing:
                b = base[cell]
                if row and _best(row) - max(b["lru"], b["lfu"], b["theine"]) >= -1:
                    continue
            for share in shares:
                if str(share) in row:
                    continue
                row[str(share)] = 100 * _replay(FixedShare(size, share=share), keys) / len(keys)
                path.write_text(json.dumps(done, indent=0))
            best = max((s for s in row if s != "slru"), key=lambda s: row[s])
            print(f"{cell:28s} best share {float(best):.2f} hit {row[best]:6.2f}", flush=True)


def _current(full: bool) -> dict[str, float]:
    path = RESULTS / f"adapt-current-{'full' if full else 'quick'}.json"
    if not path.exists():
        return {}
    return {f"{r['trace']}|{r['size']}": r["hit"] for r in json.loads(path.read_text())}


def report(full: bool) -> None:
    base = json.loads(baseline_path(full).read_text())
    rows = json.loads(_path("grid", full).read_text())
    current = _current(full)
    out = []
    print(
        f"{'cell':26s} {'opt':>6s} {'best3':>6s} {'who':6s} {'shipped':>7s} "
        f"{'ceil':>6s} {'share':>5s} {'vs_best':>7s} {'1%':>6s} {'99%':>6s}"
    )
    for cell, hits in rows.items():
        slru = hits.pop("slru", math.nan)  # share 0 as first run: main admitted all
        b = base[cell]
        who = max(("lru", "lfu", "theine"), key=lambda k: b[k])
        share = max(hits, key=lambda s: hits[s])
        trace = cell.split("|")[0]
        r = {
            "cell": cell,
            "family": family_of(trace),
            "opt": b["opt"],
            "best3": b[who],
            "who": who,
            "ceiling": hits[share],
            "share": float(share),
            "vs_best": hits[share] - b[who],
            "shipped": current.get(cell, float("nan")),
            "slru": slru,
        }
        out.append(r)
        flag = "MISS" if r["vs_best"] < -1 else ""
        print(
            f"{cell:26s} {b['opt']:6.2f} {b[who]:6.2f} {who:6s} {r['shipped']:7.2f} "
            f"{r['ceiling']:6.2f} {r['share']:5.2f} {r['vs_best']:+7.2f} "
            f"{hits.get('0.01', math.nan):6.2f} {hits.get('0.99', math.nan):6.2f} "
            f"{len(hits):2d} {flag}"
        )
    for label, part in (
        ("TUNE", [r for r in out if r["family"] not in HELD_OUT]),
        ("HELD", [r for r in out if r["family"] in HELD_OUT]),
    ):
        if not part:
            continue
        worst = min(part, key=lambda r: r["vs_best"])
        print(
            f"{label} ceiling: gap {statistics.mean(r['opt'] - r['ceiling'] for r in part):.2f} "
            f"miss {sum(r['vs_best'] < -1 for r in part)}/{len(part)} "
            f"worst {worst['vs_best']:+.2f} {worst['cell']}"
        )


def subsets(full: bool) -> None:
    """The summary columns of benchmarks/adapt.py (mean gap to OPT / cells more than a point
    below the best of LRU, LFU and theine / worst cell) for the best fixed share per cell,
    out of the whole grid and out of a few smaller sets of shares."""
    base = json.loads(baseline_path(full).read_text())
    rows = json.loads(_path("grid", full).read_text())
    grid_shares = tuple(str(s) for s in CEILING_SHARES)
    for label, shares in (
        ("whole grid", grid_shares),
        ("whole grid but 0", grid_shares[1:]),
        ("1%, 20%, 99%", ("0.01", "0.2", "0.99")),
        ("1%, 99%", ("0.01", "0.99")),
        ("1% (theine's)", ("0.01",)),
        ("slru (no admission)", ("slru",)),
    ):
        parts: dict[str, list[tuple[float, float, str]]] = {"TUNE": [], "HELD": []}
        for cell, hits in rows.items():
            # The whole grid: whatever shares the cell has (at full length, the cells the
            # coarse grid brings within a point have only its 5); a smaller set: all of it.
            whole = len(shares) > 3
            if not whole and not all(s in hits for s in shares):
                continue
            got = [hits[s] for s in shares if s in hits]
            if not got:
                continue
            b = base[cell]
            hit = max(got)
            part = "HELD" if family_of(cell.split("|")[0]) in HELD_OUT else "TUNE"
            parts[part].append((b["opt"] - hit, hit - max(b["lru"], b["lfu"], b["theine"]), cell))
        line = []
        for part, rs in parts.items():
            if not rs:
                line.append(f"{part} -")
                continue
            worst = min(rs, key=lambda r: r[1])
            line.append(
                f"{part} {statistics.mean(r[0] for r in rs):5.2f} / "
                f"{sum(r[1] < -1 for r in rs):2d} / {worst[1]:+6.2f} ({worst[2]}, {len(rs)} cells)"
            )
        print(f"{label:22s} " + "   ".join(line))


def oracle(full: bool, segment: int, below: float) -> None:
    """Greedy per-segment shares for the cells whose fixed ceiling is below `below`."""
    base = json.loads(baseline_path(full).read_text())
    rows = json.loads(_path("grid", full).read_text())
    path = _path("oracle" if segment == 10_000 else f"oracle{segment}", full)
    done: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    for trace, keys, sizes in cells(full):
        for size in sizes:
            cell = f"{trace}|{size}"
            b = base[cell]
            best3 = max(b["lru"], b["lfu"], b["theine"])
            ceiling = _best(rows.get(cell, {"0.01": 0.0}))
            if ceiling - best3 >= below or cell in done:
                continue
            cache: Any = FixedShare(size, share=0.01)
            hits = 0
            shares = []
            for start in range(0, len(keys), segment):
                part = keys[start : start + segment]
                trials = []
                for share in CEILING_SHARES:
                    twin = copy.copy(cache)
                    twin.share = share
                    twin._resize_window(share * size)
                    trials.append((_replay(twin, part), -abs(share - cache.share), share, twin))
                got, _, share, cache = max(trials, key=lambda t: t[:3])
                hits += got
                shares.append(share)
            hit = 100 * hits / len(keys)
            done[cell] = {"hit": hit, "vs_best": hit - best3, "shares": shares}
            path.write_text(json.dumps(done, indent=0))
            print(
                f"{cell:26s} best3 {best3:6.2f} fixed {ceiling:6.2f} oracle {hit:6.2f} "
                f"vs_best {hit - best3:+6.2f}",
                flush=True,
            )


def seeds(cell: str, full: bool, shares: tuple[float, ...], n: int) -> None:
    """One cell at a few shares, with the sketch's salt from seeds 1..n: how much of a share's
    lead over another is the hashing's luck."""
    from . import traces

    trace, size = cell.split("|")
    keys = traces.load(trace, traces.FULL if full else traces.QUICK)
    for share in shares:
        hits = [
            100 * _replay(FixedShare(int(size), share=share, seed=seed), keys) / len(keys)
            for seed in range(1, n + 1)
        ]
        print(
            f"{cell} share {share:.2f}: "
            + " ".join(f"{h:6.2f}" for h in hits)
            + f"  mean {statistics.mean(hits):6.2f} sd {statistics.pstdev(hits):5.2f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["grid", "report", "subsets", "oracle", "seeds"])
    parser.add_argument("cell", nargs="?", default="", help="seeds: trace|size")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--segment", type=int, default=10_000)
    parser.add_argument("--below", type=float, default=-1.0)
    parser.add_argument("--shares", default="", help="a,b,...: this grid (default: all)")
    parser.add_argument("--missing", action="store_true", help="only cells still missed")
    args = parser.parse_args()
    if args.command == "grid":
        shares = tuple(float(s) for s in args.shares.split(",")) if args.shares else CEILING_SHARES
        grid(args.full, shares, args.missing)
    elif args.command == "report":
        report(args.full)
    elif args.command == "subsets":
        subsets(args.full)
    elif args.command == "seeds":
        shares = tuple(float(s) for s in args.shares.split(",")) if args.shares else (0.01,)
        seeds(args.cell, args.full, shares, args.seeds)
    else:
        oracle(args.full, args.segment, args.below)


if __name__ == "__main__":
    main()
