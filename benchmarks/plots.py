"""Full mode's PNG plots under benchmarks/results/, drawn from the scenarios' rows.

hit_latency.png      hit cost per system as a ratio to the dict memo, ttl=60 and no ttl
stampede.png         wall time / ideal single flight by N, one line per system
memory.png           bytes per entry (tracemalloc and RSS) per system, ttl=60
hitratio_<trace>.png hit % by cache size for each policy, with OPT, one file per trace
Nothing here measures; a missing scenario just means a missing plot.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from .common import Result


def draw(results: list[Result], directory: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    by_name = {r.scenario: r.rows for r in results}
    drawn: list[Path] = []
    for name, painter in (
        ("hit", _hit),
        ("stampede", _stampede),
        ("memory", _memory),
        ("hitratio", _hitratio),
    ):
        rows = [r for r in by_name.get(name, []) if "note" not in r or len(r) > 2]
        if rows:
            drawn.extend(painter(plt, rows, directory))
    return drawn


def _hit(plt: Any, rows: list[dict[str, Any]], directory: Path) -> list[Path]:
    systems = list(dict.fromkeys(r["system"] for r in rows if "x dict" in r))
    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.4
    for i, ttl in enumerate((60.0, None)):
        values = {r["system"]: r["x dict"] for r in rows if r.get("ttl") == ttl}
        xs = [j + (i - 0.5) * width for j in range(len(systems))]
        label = "ttl=60" if ttl else "no ttl"
        ax.bar(xs, [values.get(s, 0.0) for s in systems], width, label=label)
    ax.set_xticks(range(len(systems)), systems, rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("ns per hit / dict memo's (log)")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_title("Hit latency by system (lower is better)")
    ax.legend()
    return [_save(plt, fig, directory / "hit_latency.png")]


def _stampede(plt: Any, rows: list[dict[str, Any]], directory: Path) -> list[Path]:
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        if "x ideal" in r:
            series[r["system"]].append((r["N"], r["x ideal"]))
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)
    for system, points in series.items():
        points.sort()
        style = "--" if system in ("bare", "dict") else "-"
        ax.plot([p[0] for p in points], [p[1] for p in points], style, marker="o", label=system)
    ax.set_xscale("log")
    ax.set_xlabel("concurrent callers N")
    ax.set_ylabel("wall time / ideal single flight")
    ax.set_title("Stampede overhead by N (lower is better)")
    ax.legend(fontsize=8)
    return [_save(plt, fig, directory / "stampede.png")]


def _memory(plt: Any, rows: list[dict[str, Any]], directory: Path) -> list[Path]:
    data = [r for r in rows if r.get("ttl") == 60.0 and "B/entry (tracemalloc)" in r]
    systems = [r["system"] for r in data]
    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.4
    for i, column in enumerate(("B/entry (tracemalloc)", "B/entry (RSS)")):
        xs = [j + (i - 0.5) * width for j in range(len(systems))]
        ax.bar(xs, [r[column] for r in data], width, label=column)
    ax.set_xticks(range(len(systems)), systems, rotation=30, ha="right")
    ax.set_ylabel("bytes per entry")
    ax.set_title("Memory per entry, ttl=60 (lower is better)")
    ax.legend()
    return [_save(plt, fig, directory / "memory.png")]


def _hitratio(plt: Any, rows: list[dict[str, Any]], directory: Path) -> list[Path]:
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if {"trace", "size", "policy", "hit_pct"} <= r.keys():
            traces[str(r["trace"])].append(r)
    paths = []
    for trace, trace_rows in traces.items():
        fig, ax = plt.subplots(figsize=(8, 5))
        policies: dict[str, list[tuple[Any, float]]] = defaultdict(list)
        opt: dict[Any, float] = {}
        for r in trace_rows:
            policies[str(r["policy"])].append((r["size"], float(r["hit_pct"])))
            if r.get("opt_pct") is not None:
                opt[r["size"]] = float(r["opt_pct"])
        for policy, points in sorted(policies.items()):
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=policy)
        if opt:
            sizes = sorted(opt)
            ax.plot(sizes, [opt[s] for s in sizes], "k--", label="OPT")
        ax.set_xscale("log")
        ax.set_xlabel("cache size (entries)")
        ax.set_ylabel("hit %")
        ax.set_title(f"Hit ratio by cache size: {trace}")
        ax.legend(fontsize=8)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in trace)
        paths.append(_save(plt, fig, directory / f"hitratio_{safe}.png"))
    return paths


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
