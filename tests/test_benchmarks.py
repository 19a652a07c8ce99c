"""The benchmark harness still runs against the current core (its outcome scenarios only).

Also checks its progress bar: a total fixed before the first scenario, reached at the end.

Runs `python -m benchmarks` in a subprocess with cachekit alone (no peer needs installing)
on the deterministic scenarios, and pins cachekit's outcomes there: one load on an expired
key, one load for 100 callers of a failing loader, the others unharmed by a cancelled caller.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_outcome_scenarios_run_and_cachekit_meets_them(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [
        sys.executable,
        "-m",
        "benchmarks",
        "--quick",
        "--systems",
        "cachekit",
        "--scenarios",
        "expiry,cancellation,failure,hitratio,shared",
        "--json",
        str(out),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    scenarios = json.loads(out.read_text())["scenarios"]

    def row(scenario: str, system: str = "cachekit") -> dict[str, object]:
        rows = scenarios[scenario]["rows"]
        return next(r for r in rows if r["system"] == system)

    assert row("expiry")["loader calls"] == 1
    assert row("cancellation")["others when 1st cancelled"] == "2/2 value"
    assert row("cancellation")["result stored"] == "yes"
    assert row("failure")["loads by 100 callers"] == 1
    assert row("failure", "cachekit (negative_ttl=5)")["failure cached"] == (
        "yes, reloaded after 5 s"
    )
    shared = scenarios["shared"]["rows"]
    if shared:  # empty when no redis-server is installed (the scenario says it skipped)
        for label in ("cachekit", "cachekit (4 processes)", "cachekit (8 processes)"):
            fleet = row("shared", label)
            # One load per key in the fleet, but for the Redis errors (op_timeout on a
            # starved runner) that the tier answered by loading in-process, by design:
            # each of those costs at most one more load.
            ideal, loads, degraded = (
                int(fleet[k])
                for k in ("ideal calls", "loader calls", "degraded")  # type: ignore[call-overload]
            )
            assert ideal <= loads <= ideal + degraded, fleet
            assert fleet["errors"] == 0
    notes = " ".join(n for s in scenarios.values() for n in s["notes"])
    assert "failed" not in notes and "progress:" not in notes, notes
    # The progress bar (tqdm, on stderr) knows its total before the first step and ends on it.
    counts = re.findall(r"\b(\d+)/(\d+) \[", done.stderr)
    assert counts, done.stderr
    assert {total for _, total in counts} == {counts[-1][1]}, counts
    assert counts[0][0] == "0" and counts[-1][0] == counts[-1][1], counts
