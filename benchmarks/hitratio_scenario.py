"""Scenario 8, hit ratio: the harness side only; the measurement lives in benchmarks/hitratio.py.

`benchmarks.hitratio.run(quick=...)` replays traces through each eviction policy at several
cache sizes next to Bélády's optimal and returns rows (trace, size, policy, hit_pct, opt_pct,
gap_pts, ns_per_access). This module imports it lazily, so the harness runs (and reports
"skipped") before that module is merged, and prints its rows as one table; the full mode plots
hit % by cache size per trace from the same rows.
"""

from __future__ import annotations

import importlib
from typing import Any

from .common import Context, Result

MODULE = "benchmarks.hitratio"


def steps(ctx: Context) -> int:
    """The progress steps run() takes: one, the whole measurement."""
    return 1


def run(ctx: Context) -> Result:
    title = "Hit ratio: eviction policies against Bélády's OPT by trace and cache size"
    try:
        module = importlib.import_module(MODULE)
        measure = module.run
    except ImportError as exc:
        reason = f"skipped: {MODULE} not available ({exc})"
        return Result("hitratio", title, [], notes=[reason])
    rows: list[dict[str, Any]] = list(measure(quick=ctx.quick))
    ctx.progress.step("hitratio")
    return Result(
        "hitratio",
        title,
        rows,
        notes=[
            "hit_pct and opt_pct in %, gap_pts = opt_pct - hit_pct in points.",
            "cost rows: x_lru = the policy's ns per access / cachetools LRUCache's in the same"
            " repeat (median over interleaved repeats); bytes_per_entry by tracemalloc.",
        ],
    )
