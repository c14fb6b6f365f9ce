"""What every benchmark script shares: percentiles, progress lines, goal verdicts, the command line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (the same rule as ``raw_baseline``'s p99)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def progress(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def judge(figures: dict[str, Any], goals: dict[str, tuple[str, float]]) -> dict[str, dict[str, Any]]:
    """``{name: {goal, value, pass}}`` for each goal; a figure the run did not produce fails."""
    verdicts = {}
    for name, (op, limit) in goals.items():
        value = figures.get(name)
        passed = value is not None and (value <= limit if op == "<=" else value >= limit)
        verdicts[name] = {"goal": f"{op} {limit:g}", "value": value, "pass": passed}
    return verdicts


def report(
    figures: dict[str, Any],
    goals: dict[str, tuple[str, float]],
    *,
    quick: bool,
    started: float,
    load_before: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The JSON a benchmark prints: its figures, each goal judged, and how and where it ran (``extra`` too)."""
    verdicts = judge(figures, goals)
    loads = (
        {}
        if load_before is None
        else {"loadavg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    )
    return {
        **figures,
        "goals": verdicts,
        "all_goals_pass": all(v["pass"] for v in verdicts.values()),
        "cpu_count": os.cpu_count(),
        **extra,
        "mode": "quick" if quick else "full",
        **loads,
        "source": source_version(),
        "run_s": round(time.perf_counter() - started, 1),
    }


def source_version() -> dict[str, Any]:
    """Which paglets code was measured: the commit, and the files that differ from it."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = [line[3:] for line in git("status", "--porcelain", "--", "paglets").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD"), "paglets_changed_files": changed}


def main(description: str, run: Callable[[bool], dict[str, Any]], quick_help: str = "fewer samples") -> None:
    """Parse ``--quick``, run, print the figures as one JSON object."""
    parser = argparse.ArgumentParser(description=f"{description}; prints one JSON object")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    args = parser.parse_args()
    # SIGTERM (a timeout, a CI cancel) must unwind through the finally blocks that stop the nodes.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    print(json.dumps(run(args.quick), indent=1))
