"""The crash test at full size: 10,000 subscribers, 2 real workers, 5 random SIGKILLs.

Runs the end-to-end test ``tests/e2e/test_crash_publish.py`` (which CI runs with 2,500
subscribers) through pytest with bigger numbers, once per ``--runs``, each with its own
seed, and prints the numbers of every run as a Markdown table::

    .venv/bin/python bench/crash.py [--subscribers 10000] [--kills 5] [--runs 3] [--seed S]

A failing run (anybody lost, duplicates over ``kills x batch size``, a row not ``sent``)
prints pytest's report, including the seed to rerun it with, and the script exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from _harness import REPO, machine

TEST = (
    "tests/e2e/test_crash_publish.py::"
    "test_sigkilled_workers_lose_nobody_and_duplicate_at_most_a_batch_per_kill"
)
COLUMNS = (
    ("seed", "seed"),
    ("seconds", "send s"),
    ("accepted_by_sink", "accepted by sink"),
    ("recipients_reached", "recipients reached"),
    ("lost", "lost"),
    ("duplicates", "duplicates"),
    ("duplicate_bound", "bound (kills x batch)"),
    ("rows_with_retries", "rows re-claimed"),
)


def run_once(args: argparse.Namespace, seed: int, report: Path) -> dict[str, object] | None:
    env = dict(os.environ)
    env.update(
        {
            "HERALD_CRASH_SUBSCRIBERS": str(args.subscribers),
            "HERALD_CRASH_KILLS": str(args.kills),
            "HERALD_CRASH_BATCH_SIZE": str(args.batch_size),
            "HERALD_CRASH_SINK_DELAY_MS": str(args.sink_delay_ms),
            "HERALD_CRASH_SEED": str(seed),
            "HERALD_CRASH_REPORT": str(report),
        }
    )
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", TEST, "-q", "-s", "-p", "no:cacheprovider"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        print(completed.stdout[-6000:], completed.stderr[-3000:], sep="\n", file=sys.stderr)
    if not report.exists():
        return None
    data: dict[str, object] = json.loads(report.read_text())
    data["passed"] = completed.returncode == 0
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--sink-delay-ms", type=float, default=150)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seed", type=int, help="seed of the first run (then +1, +2, ...)")
    args = parser.parse_args()
    first = args.seed if args.seed is not None else random.randrange(2**32)
    results = []
    with tempfile.TemporaryDirectory(prefix="herald-crash-") as work:
        for run in range(args.runs):
            seed = first + run
            print(f"run {run + 1}/{args.runs}, seed {seed} ...", file=sys.stderr, flush=True)
            data = run_once(args, seed, Path(work) / f"run-{run}.json")
            if data is None:
                print(f"run {run + 1} failed before measuring (seed {seed})", file=sys.stderr)
                return 1
            results.append(data)
    print(
        f"{args.subscribers:,} confirmed subscribers, 2 workers, {args.kills} SIGKILLs, "
        f"batch {args.batch_size}, lease 2 s, sink delay {args.sink_delay_ms:g} ms; "
        f"{machine()}; Python {platform.python_version()}; "
        f"{datetime.now(UTC).date().isoformat()}"
    )
    print("| " + " | ".join(title for _, title in COLUMNS) + " | result |")
    print("|" + "---:|" * len(COLUMNS) + "---|")
    for data in results:
        cells = [f"{data[key]:,}" if key != "seed" else str(data[key]) for key, _ in COLUMNS]
        print("| " + " | ".join(cells) + f" | {'pass' if data['passed'] else 'FAIL'} |")
    return 0 if all(data["passed"] for data in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
