"""Entry point of the benchmark harness: `python -m benchmarks [--quick] [options]`.

Runs the scenarios of issue 3 against cachekit, its peers and two floors (`bare`, `dict`),
prints one markdown table per scenario on stdout (progress goes to stderr), then cachekit's
targets with met/missed. `--json PATH` writes every row; full mode also draws PNG plots under
benchmarks/results/. See benchmarks/README.md for what each scenario measures.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib
import importlib.metadata
import inspect
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .adapters import Adapter, all_adapters
from .common import Context, Progress, Result, Target, fmt_ns, fmt_ratio

# name -> module with `run(ctx) -> Result` (sync or async); imported only when selected. The
# same module has `steps(ctx) -> int` ("run" in the name becomes "steps"): how many progress
# steps run() takes, so that the bar's total is known before the first scenario starts.
SCENARIOS: dict[str, str] = {
    "hit": "benchmarks.hit",
    "stampede": "benchmarks.stampede",
    "mixed": "benchmarks.mixed",
    "memory": "benchmarks.memory",
    "scale": "benchmarks.scale",
    "expiry": "benchmarks.expiry",
    "cancellation": "benchmarks.outcomes:run_cancellation",
    "failure": "benchmarks.outcomes:run_failure",
    "hitratio": "benchmarks.hitratio_scenario",
    "coldstart": "benchmarks.coldstart:run_scenario",
    "shared": "benchmarks.shared",
    "misses": "benchmarks.misses",
}

RESULTS_DIR = Path(__file__).parent / "results"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 1.5 to 2 minutes")
    parser.add_argument(
        "--scenarios", default="", help=f"comma-separated subset of: {', '.join(SCENARIOS)}"
    )
    parser.add_argument(
        "--systems", default="", help="comma-separated peers (the floors always run)"
    )
    parser.add_argument("--json", metavar="PATH", help="write all rows and targets as JSON")
    parser.add_argument("--no-plots", action="store_true", help="full mode: skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser.parse_args(argv)


def _pick(spec: str, known: list[str], what: str) -> list[str]:
    if not spec:
        return list(known)
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return wanted


def _load(spec: str) -> tuple[Callable[[Context], Any], Callable[[Context], int]]:
    """A scenario's run(ctx) and steps(ctx)."""
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    attr = attr or "run"
    run: Callable[[Context], Any] = getattr(module, attr)
    steps: Callable[[Context], int] = getattr(module, attr.replace("run", "steps", 1))
    return run, steps


def _progress_bar(disabled: bool, total: int) -> Any | None:
    if disabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, file=sys.stderr, unit="step", dynamic_ncols=True, leave=False)


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "none" if column == "ttl" else ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if column.startswith("x ") or column.endswith(" x"):
            return fmt_ratio(value)
        if column.startswith("ns") or column.endswith(" ns"):
            return fmt_ns(value)
        if column == "ttl":
            return f"{value:g}"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        for column in row:
            if column not in columns:
                columns.append(column)
    if "note" in columns:  # the free-text column reads best last
        columns.remove("note")
        columns.append("note")
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(c, row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _targets_table(targets: list[Target]) -> str:
    rows = [
        {"target": t.name, "wanted": t.target, "cachekit": t.value, "verdict": t.verdict}
        for t in targets
    ]
    return markdown_table(rows)


def _systems_table(adapters: list[Adapter]) -> str:
    rows = []
    for a in adapters:
        status = f"skipped: {a.skipped}" if a.skipped else "ok"
        rows.append(
            {
                "system": a.name,
                "version": a.version or ("floor" if a.floor else ""),
                "status": status,
                "maxsize": "yes" if a.bounded else "no",
                "clock injection": "yes" if a.clock else "no",
                "note": a.note,
            }
        )
    return markdown_table(rows)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _machine() -> dict[str, Any]:
    return {
        "cachetools": _version("cachetools"),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    scenarios = _pick(args.scenarios, list(SCENARIOS), "scenario")
    adapters = all_adapters()
    peer_names = [a.name for a in adapters if not a.floor]
    wanted = set(_pick(args.systems, peer_names, "system"))
    selected = [a for a in adapters if a.floor or a.name in wanted]
    for adapter in selected:
        adapter.probe()
    available = [a for a in selected if a.skipped is None]
    skipped = [a for a in selected if a.skipped is not None]

    machine = _machine()
    mode = "quick" if args.quick else "full"
    print(f"# cachekit benchmarks ({mode} mode)\n")
    print(
        f"{machine['date']}; Python {machine['python']} ({machine['implementation']}); "
        f"{machine['platform']}; {machine['cpus']} CPUs; cachetools {machine['cachetools']}\n"
    )
    print("## Systems\n")
    print(_systems_table(selected) + "\n", flush=True)

    ctx = Context(quick=args.quick, systems=available, skipped=skipped, progress=Progress(None))
    # Every scenario's share of the bar, before the first one runs: the total never grows.
    plans: list[tuple[str, Callable[[Context], Any] | Exception, int]] = []
    for name in scenarios:
        try:
            run, steps = _load(SCENARIOS[name])
            plans.append((name, run, steps(ctx)))
        except Exception as exc:  # reported with the results, like a scenario that fails
            plans.append((name, exc, 0))
    bar = _progress_bar(args.no_progress, sum(n for _, _, n in plans))
    ctx.progress = Progress(bar)
    results: list[Result] = []
    began = time.perf_counter()
    planned = 0
    for name, run_or_error, steps_planned in plans:
        started = time.perf_counter()
        planned += steps_planned
        try:
            if isinstance(run_or_error, Exception):
                raise run_or_error
            run = run_or_error
            if inspect.iscoroutinefunction(run):
                result = asyncio.run(run(ctx))
            else:
                result = run(ctx)
        except Exception as exc:  # one broken scenario must not hide the others' results
            result = Result(name, name, [], notes=[f"failed: {type(exc).__name__}: {exc}"])
        if ctx.progress.done > planned:  # steps() no longer matches run(): a bug to fix
            result.notes.append(
                f"progress: took {ctx.progress.done - planned} steps more than steps() said"
            )
        ctx.progress.skip_to(planned)  # a scenario that skipped or failed leaves its share
        seconds = time.perf_counter() - started
        results.append(result)
        _print_result(result, seconds, bar)
    if bar is not None:
        bar.close()
    total = time.perf_counter() - began

    targets = [t for r in results for t in r.targets]
    if targets:
        print("## cachekit against its targets\n")
        print(_targets_table(targets) + "\n")
    print(f"Total time: {total:.1f} s\n", flush=True)

    if args.json:
        _write_json(Path(args.json), mode, machine, selected, results, total)
    if not args.quick and not args.no_plots:
        from .plots import draw

        for path in draw(results, RESULTS_DIR):
            print(f"plot: {path}")
    return 0


def _print_result(result: Result, seconds: float, bar: Any | None) -> None:
    text = [f"## {result.title}\n"]
    if result.rows:
        text.append(markdown_table(result.rows) + "\n")
    for note in result.notes:
        text.append(f"- {note}")
    for t in result.targets:
        text.append(f"- target {t.name}: {t.target}; cachekit {t.value}: **{t.verdict}**")
    text.append(f"- scenario time: {seconds:.1f} s\n")
    output = "\n".join(text)
    if bar is not None:
        bar.clear()
    print(output, flush=True)
    if bar is not None:
        bar.refresh()


def _write_json(
    path: Path,
    mode: str,
    machine: dict[str, Any],
    adapters: list[Adapter],
    results: list[Result],
    total: float,
) -> None:
    document = {
        "mode": mode,
        "machine": machine,
        "total_seconds": total,
        "systems": [
            {"name": a.name, "version": a.version, "skipped": a.skipped, "note": a.note}
            for a in adapters
        ],
        "scenarios": {
            r.scenario: {
                "title": r.title,
                "rows": r.rows,
                "notes": r.notes,
                "targets": [t.__dict__ | {"verdict": t.verdict} for t in r.targets],
            }
            for r in results
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"json: {path}")


if __name__ == "__main__":
    raise SystemExit(main())
