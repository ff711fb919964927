"""How every benchmark scenario records its result for BENCHMARKS.md.

A scenario script (``bench/<name>.py``) measures, then calls :func:`write_section` with
its scenario id (``P1`` … ``R6``) and a Markdown section: a ``###`` heading, the exact
command, a table of medians with min-max over its runs, the targets and whether each was
met. ``bench/report.py`` puts the sections in order between the generated-block markers
of ``BENCHMARKS.md``; the hand-written analysis outside those markers is kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

# HERALD_BENCH_RESULTS redirects the sections (the CI smoke test, trial runs) so a trial
# never overwrites the results of a full run.
RESULTS = Path(
    os.environ.get("HERALD_BENCH_RESULTS") or Path(__file__).resolve().parent / "results"
)
ORDER = ("P1", "P2", "P3", "P4", "R1", "R2", "R3", "R6", "A1")


def spread(values: list[float], fmt: str = ",.0f") -> str:
    """``median (min-max)`` of the runs, formatted with ``fmt``."""
    if not values:
        return "—"
    median = format(statistics.median(values), fmt)
    if len(values) == 1:
        return f"{median} (1 run)"
    return f"{median} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def command_line() -> str:
    """The command that is running now, as a reader would type it from the repo root."""
    script = Path(sys.argv[0])
    with contextlib.suppress(ValueError):
        script = script.resolve().relative_to(Path.cwd())
    return shlex.join([".venv/bin/python", str(script), *sys.argv[1:]])


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def write_section(scenario: str, markdown: str, data: object | None = None) -> Path:
    """Store one scenario's section (and optionally its raw numbers as JSON)."""
    if scenario not in ORDER:
        raise ValueError(f"unknown scenario {scenario!r}; one of {ORDER}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{scenario}.md"
    path.write_text(markdown.rstrip() + "\n")
    if data is not None:
        (RESULTS / f"{scenario}.json").write_text(json.dumps(data, indent=2, default=str))
    print(f"wrote {path}", file=sys.stderr)
    return path
